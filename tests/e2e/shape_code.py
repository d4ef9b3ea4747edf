"""A forward whose result depends on an item's length: a compiled forward that fixed the length at
build time computes the wrong thing on other lengths, so the runtime must refuse them."""

from __future__ import annotations

import torch
from torch import nn

from padlc import batch, transform, unbatch


def rows(values: list[list[float]]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


class MeanOverRows(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(1) / x.shape[1]


pipeline = transform(rows) >> batch >> transform(MeanOverRows)() >> unbatch
examples = [[[1.0, 2.0]] * 3, [[3.0, 4.0]] * 3]
