"""padlc.build traces on its ``device``: the pipeline is moved there for the build and put back.
(The layers' own round trip to a GPU is covered by tests/e2e/test_cuda.py, which builds a CPU
pipeline for CUDA; here the device is the meta device and the layer holds no tensors.)"""

from __future__ import annotations

import torch

from padlc import Transform, batch, transform, unbatch
from padlc.builder.arguments import on_device


def pipeline() -> Transform:
    return transform(lambda x: x) >> batch >> transform(torch.nn.ReLU()) >> unbatch


def test_the_pipeline_applies_on_the_build_device_during_the_build() -> None:
    p = pipeline()
    with on_device(p, "meta"):
        assert p.pd_device == "meta"
        assert all(t.pd_device == "meta" for t in p.pd_iter_transforms())


def test_the_pipeline_is_put_back_afterwards() -> None:
    p = pipeline()
    with on_device(p, "meta"):
        pass
    assert all(t.pd_device == "cpu" for t in p.pd_iter_transforms())


class CountingLinear(torch.nn.Linear):
    """Counts the calls that would move it."""

    moves = 0

    def to(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        CountingLinear.moves += 1
        return super().to(*args, **kwargs)


def test_a_pipeline_already_on_the_device_is_not_moved() -> None:
    CountingLinear.moves = 0
    p = transform(lambda x: x) >> batch >> transform(CountingLinear(2, 2)) >> unbatch
    with on_device(p, "cpu"):
        pass
    assert CountingLinear.moves == 0
