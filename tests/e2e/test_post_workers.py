"""A built artifact's eval_apply with the post stage in worker processes (post_workers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import padl_runtime
import padlc
from tests.e2e.pipelines import FIXTURES

FIXTURE = {f.name: f for f in FIXTURES}["dict_output"]  # a per-item postprocess: label + dict


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("post") / "post.padl"
    return padlc.build(FIXTURE.make(), target, inputs=FIXTURE.inputs, backend="torchscript").path


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_post_workers_give_the_outputs_of_inline_postprocessing(
    artifact: Path, context: str
) -> None:
    pipeline = padl_runtime.load(artifact)
    items = list(FIXTURE.inputs) * 5
    inline = list(pipeline.eval_apply(items, batch_size=2))
    pooled = pipeline.eval_apply(
        items, batch_size=2, post_workers=2, multiprocessing_context=context
    )
    assert _same(list(pooled), inline)


def _same(a: Any, b: Any) -> bool:
    """Exactly equal, tensors included (the same computation ran, only in another process)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b
