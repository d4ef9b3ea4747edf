"""An AOTInductor package for a device gets every tensor of the exported program on that device."""

from __future__ import annotations

import torch

from padlc.lowering.aoti import _tensors_on

SCALE = torch.tensor(2.0)  # a module-level CPU constant, as a moved function may read


class Scaled(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)
        self.register_buffer("offset", torch.ones(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * SCALE + self.offset


def test_parameters_buffers_and_lifted_constants_move_to_the_device() -> None:
    program = torch.export.export(Scaled(), (torch.rand(4, 3),))
    assert program.constants, "the module-level tensor should be a lifted constant"
    moved = _tensors_on(program, torch.device("meta"))
    devices = {v.device.type for v in [*moved.state_dict.values(), *moved.constants.values()]}
    assert devices == {"meta"}
    assert isinstance(moved.state_dict["linear.weight"], torch.nn.Parameter)
