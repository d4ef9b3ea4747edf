"""One built artifact for the trust and integrity tests (building takes seconds): the tests copy
it before changing anything."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import padlc
from padlc import batch, transform, unbatch


@transform
def to_tensor(x):
    return torch.tensor(x, dtype=torch.float32)


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``to_tensor >> batch >> Linear(3, 2) >> unbatch``, built with ``export`` on this machine
    (so it is in the session's trust store)."""
    torch.manual_seed(0)
    pipeline = to_tensor >> batch >> transform(torch.nn.Linear(3, 2)) >> unbatch
    root = tmp_path_factory.mktemp("trust")
    return padlc.build(
        pipeline, root / "model.padl", inputs=[[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]], backend="export"
    ).path
