"""A transformer on PyTorch's default TransformerEncoder with a padding mask builds with the
tracing backends and reproduces eager inference in a fresh process (eager packs the padded batch
into a nested tensor, which a trace cannot: padlc.lowering.fastpath)."""

from __future__ import annotations

from pathlib import Path

import pytest

import padlc
from tests.e2e import fastpath_code as code

#: Eager inference's own notice when it packs the nested tensor (not padlc's).
pytestmark = pytest.mark.filterwarnings(
    "ignore:The PyTorch API of nested tensors is in prototype stage:UserWarning"
)


@pytest.mark.parametrize("backend", ["export", "onnx"])
def test_a_padded_default_encoder_builds_and_verifies(tmp_path: Path, backend: str) -> None:
    if backend == "onnx":
        pytest.importorskip("onnxruntime")
    # verify=True (the default): the artifact is run in a fresh process and compared with eager.
    result = padlc.build(
        code.PIPELINE, tmp_path / f"{backend}.padl", inputs=code.INPUTS, backend=backend
    )
    assert result.backend == backend
    assert result.max_abs_error is not None and result.max_abs_error < 1e-5
