"""The export loader's unlifted module reads what the graph needs with one lookup per tensor."""

from __future__ import annotations

import torch
from torch import nn

from padl_runtime.backends.export import _flat_attributes, _without_pytree


class Nested(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 2)))
        self.register_buffer("offset", torch.tensor([0.5, -0.5]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.body(x) + self.offset,)


def _unlifted() -> tuple[Nested, torch.fx.GraphModule]:
    model = Nested().eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    with torch.no_grad():
        program = torch.export.export(
            model, (torch.randn(3, 4),), dynamic_shapes=({0: batch},), strict=False
        )
    return model, _without_pytree(program.module(check_guards=False))


def test_no_tensor_is_read_through_a_submodule_after_flattening() -> None:
    _, module = _unlifted()
    assert any("." in str(n.target) for n in module.graph.nodes if n.op == "get_attr")
    flat = _flat_attributes(module)
    assert all("." not in str(n.target) for n in flat.graph.nodes if n.op == "get_attr")


def test_flattening_keeps_the_outputs() -> None:
    model, module = _unlifted()
    x = torch.randn(5, 4)
    with torch.no_grad():
        torch.testing.assert_close(_flat_attributes(module).forward(x), model(x))


def test_the_flat_attributes_are_the_modules_own_tensors() -> None:
    _, module = _unlifted()
    weights = {id(p) for p in module.parameters()} | {id(b) for b in module.buffers()}
    flat = _flat_attributes(module)
    bound = [v for k, v in vars(flat).items() if k.startswith("_padl_attr_")]
    assert bound and all(id(v) in weights for v in bound)
