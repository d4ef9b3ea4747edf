"""tiny: 16 floats → MLP 16→32→4 → argmax. Measures per-item overhead, not the network."""

from __future__ import annotations

import torch

from benchmarks.workload import Workload


def make_items(count: int, seed: int) -> list[list[float]]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(count, 16, generator=generator).tolist()


def to_tensor(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


class TinyMLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).argmax(-1)


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return TinyMLP().eval()


def to_int(label: torch.Tensor) -> int:
    return int(label.item())


WORKLOAD = Workload(
    name="tiny",
    description="16 floats → MLP 16→32→4 → argmax",
    make_items=make_items,
    preprocess=to_tensor,
    make_model=make_model,
    postprocess=to_int,
    items={"small": 20_000, "full": 500_000},
    padl_style=True,
)
