"""Exported forwards keep eager inference's fused TransformerEncoderLayer kernel where eager
would use it, and only there."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from padlc.lowering.fastpath import fused_calls, fused_fastpaths


class Encoder(nn.Module):
    def __init__(self, heads: int = 4, **options: object) -> None:
        super().__init__()
        torch.manual_seed(0)
        options.setdefault("batch_first", True)
        layer = nn.TransformerEncoderLayer(16, heads, 32, dropout=0.0, **options)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)


class PaddedEncoder(Encoder):
    """Positions where the first feature is negative are padding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x, src_key_padding_mask=x[..., 0] < -1.0)


def _export(model: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    batch = torch.export.Dim("batch", min=1, max=1024)
    with torch.no_grad(), fused_fastpaths(model):
        return torch.export.export(model, (example,), dynamic_shapes=({0: batch},), strict=False)


@pytest.fixture
def inputs() -> torch.Tensor:
    return torch.randn(5, 7, 16, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def fastpath_off() -> Iterator[None]:
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


def test_an_eligible_layer_exports_as_the_fused_kernel(inputs: torch.Tensor) -> None:
    program = _export(Encoder().eval(), inputs)
    assert fused_calls(program) == {"TransformerEncoderLayer": 2}


@pytest.mark.parametrize(
    "options",
    [{}, {"norm_first": True}, {"activation": "gelu"}],
    ids=["post-norm relu", "pre-norm", "gelu"],
)
def test_the_fused_export_equals_eager_inference_at_another_batch_size(
    inputs: torch.Tensor, options: dict[str, object]
) -> None:
    model = Encoder(**options).eval()
    program = _export(model, inputs[:2])
    assert fused_calls(program) == {"TransformerEncoderLayer": 2}
    with torch.no_grad():
        torch.testing.assert_close(program.module()(inputs), model(inputs), rtol=0, atol=1e-6)


def test_a_padding_mask_is_merged_as_eager_merges_it(inputs: torch.Tensor) -> None:
    model = PaddedEncoder().eval()
    program = _export(model, inputs)
    assert fused_calls(program) == {"TransformerEncoderLayer": 2}
    with torch.no_grad():
        torch.testing.assert_close(program.module()(inputs), model(inputs), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "options", [{"heads": 1}, {"batch_first": False}], ids=["odd head count", "sequence first"]
)
def test_a_layer_eager_would_not_fuse_keeps_its_reference_path(
    inputs: torch.Tensor, options: dict[str, object]
) -> None:
    model = Encoder(**options).eval()
    program = _export(model, inputs)
    assert fused_calls(program) == {}
    with torch.no_grad():
        torch.testing.assert_close(program.module()(inputs), model(inputs))


def test_a_training_layer_is_not_fused(inputs: torch.Tensor) -> None:
    assert fused_calls(_export(Encoder().train(), inputs)) == {}


def test_turning_the_fastpath_off_in_torch_turns_it_off_in_exports(
    inputs: torch.Tensor, fastpath_off: None
) -> None:
    assert fused_calls(_export(Encoder().eval(), inputs)) == {}


def test_the_layers_own_forward_is_back_after_the_trace() -> None:
    model = Encoder().eval()
    with fused_fastpaths(model):
        pass
    assert not any("forward" in vars(m) for m in model.modules())


def test_the_layers_own_forward_is_back_after_a_failed_trace() -> None:
    model = Encoder().eval()
    with pytest.raises(RuntimeError, match="trace failed"), fused_fastpaths(model):
        raise RuntimeError("trace failed")
    assert not any("forward" in vars(m) for m in model.modules())
