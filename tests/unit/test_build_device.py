"""padlc.build traces on its ``device``: the pipeline is moved there for the build and put back.
(The layers' own round trip to a GPU is covered by tests/e2e/test_cuda.py, which builds a CPU
pipeline for CUDA; here the device is the meta device and the layer holds no tensors.)"""

from __future__ import annotations

import torch

from padlc import Transform, batch, transform, unbatch
from padlc.builder.core import _on_device


def pipeline() -> Transform:
    return transform(lambda x: x) >> batch >> transform(torch.nn.ReLU()) >> unbatch


def test_the_pipeline_applies_on_the_build_device_during_the_build() -> None:
    p = pipeline()
    with _on_device(p, "meta"):
        assert p.pd_device == "meta"
        assert all(t.pd_device == "meta" for t in p.pd_iter_transforms())


def test_the_pipeline_is_put_back_afterwards() -> None:
    p = pipeline()
    with _on_device(p, "meta"):
        pass
    assert all(t.pd_device == "cpu" for t in p.pd_iter_transforms())


def test_a_pipeline_already_there_is_not_touched() -> None:
    layer = torch.nn.Linear(2, 2)
    p = transform(lambda x: x) >> batch >> transform(layer) >> unbatch
    before = layer.weight.data_ptr()
    with _on_device(p, "cpu"):
        assert layer.weight.data_ptr() == before
    assert layer.weight.data_ptr() == before
