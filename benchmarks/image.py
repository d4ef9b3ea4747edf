"""image: 64×64 uint8 RGB → normalise → small CNN → (label, probability)."""

from __future__ import annotations

import torch

from benchmarks.workload import Workload

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def make_items(count: int, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (count, 3, 64, 64), dtype=torch.uint8, generator=generator)
    return [image.clone() for image in images]  # separate items, as if decoded one by one


def normalise(image: torch.Tensor) -> torch.Tensor:
    return (image.float() / 255 - MEAN) / STD


class SmallCNN(torch.nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        for inputs, outputs in ((3, 16), (16, 32), (32, 64)):
            layers += [torch.nn.Conv2d(inputs, outputs, 3, stride=2, padding=1), torch.nn.ReLU()]
        self.features = torch.nn.Sequential(*layers)
        self.head = torch.nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.head(self.features(x).mean(dim=(2, 3)))
        probability, label = logits.softmax(-1).max(-1)
        return label, probability


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return SmallCNN().eval()


def label_and_probability(output: tuple[torch.Tensor, torch.Tensor]) -> tuple[int, float]:
    label, probability = output
    return int(label), float(probability)


WORKLOAD = Workload(
    name="image",
    description="64×64 uint8 RGB → normalise → CNN (3 conv) → (label, prob)",
    make_items=make_items,
    preprocess=normalise,
    make_model=make_model,
    postprocess=label_and_probability,
    items={"small": 8192, "full": 100_000},
)
