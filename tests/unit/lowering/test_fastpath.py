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


# --- nn.TransformerEncoder with a padding mask: eager packs a nested tensor ---------------------

#: Eager inference's own notice when it packs the nested tensor (not padlc's).
NESTED_PROTOTYPE = "ignore:The PyTorch API of nested tensors is in prototype stage:UserWarning"


class NestedEncoder(nn.Module):
    """The default encoder (nested tensors enabled); token 0 is padding."""

    def __init__(self, final_norm: bool = False, mask_check: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(10, 16)
        layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True)
        norm = nn.LayerNorm(16) if final_norm else None
        self.encoder = nn.TransformerEncoder(layer, 2, norm=norm, mask_check=mask_check)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.embedding(ids), src_key_padding_mask=ids == 0)


RIGHT_PADDED = torch.tensor([[3, 4, 5, 0, 0], [1, 2, 0, 0, 0], [6, 7, 8, 9, 1]])
LEFT_PADDED = torch.tensor([[0, 0, 3, 4, 5], [0, 0, 0, 1, 2], [6, 7, 8, 9, 1]])


def _export_ids(model: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    batch = torch.export.Dim("batch", min=1, max=1024)
    with torch.no_grad(), fused_fastpaths(model):
        return torch.export.export(model, (example,), dynamic_shapes=({0: batch},), strict=False)


@pytest.mark.filterwarnings(NESTED_PROTOTYPE)
@pytest.mark.parametrize("final_norm", [False, True], ids=["no final norm", "final norm"])
def test_padded_positions_are_zero_as_in_eager_when_the_padding_is_left_aligned(
    final_norm: bool,
) -> None:
    model = NestedEncoder(final_norm).eval()
    program = _export_ids(model, RIGHT_PADDED[:2])
    with torch.no_grad():
        expected = model(RIGHT_PADDED)
        torch.testing.assert_close(program.module()(RIGHT_PADDED), expected, rtol=0, atol=1e-5)
    if not final_norm:
        assert torch.count_nonzero(expected[RIGHT_PADDED == 0]) == 0  # what eager does


@pytest.mark.filterwarnings(NESTED_PROTOTYPE)
def test_padding_that_is_not_left_aligned_keeps_the_dense_values_as_in_eager() -> None:
    model = NestedEncoder().eval()
    program = _export_ids(model, RIGHT_PADDED[:2])  # traced on aligned padding
    with torch.no_grad():
        expected = model(LEFT_PADDED)
        torch.testing.assert_close(program.module()(LEFT_PADDED), expected, rtol=0, atol=1e-5)
    assert torch.count_nonzero(expected[LEFT_PADDED == 0]) > 0  # eager did not nest


@pytest.mark.filterwarnings(NESTED_PROTOTYPE)
def test_without_the_mask_check_padded_positions_are_zero_as_in_eager() -> None:
    model = NestedEncoder(mask_check=False).eval()  # a promise that the padding is left-aligned
    program = _export_ids(model, RIGHT_PADDED[:2])
    with torch.no_grad():
        torch.testing.assert_close(
            program.module()(RIGHT_PADDED), model(RIGHT_PADDED), rtol=0, atol=1e-5
        )
