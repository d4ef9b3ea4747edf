"""Plain user code for the stage-boundary move tests: no padlc import, so artifacts can run it."""

from __future__ import annotations

import torch
from torch import nn

MEAN, STD = torch.tensor([0.5, 0.4, 0.3]), torch.tensor([0.2, 0.2, 0.2])


def load(seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (8, 8, 3), dtype=torch.uint8, generator=generator)


def normalise(image: torch.Tensor) -> torch.Tensor:
    """One CHW float image, normalised per channel."""
    return (image - MEAN[:, None, None]) / STD[:, None, None]


def by_brightest(image: torch.Tensor) -> torch.Tensor:
    """Python reads a value of the item (``.item()``): vmap cannot run it."""
    return image / image.max().item()


class Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).mean(dim=(2, 3)))


def top_probability(probabilities: torch.Tensor) -> float:
    return round(float(probabilities.max()), 6)


def label_index(index: torch.Tensor) -> int:
    return int(index)
