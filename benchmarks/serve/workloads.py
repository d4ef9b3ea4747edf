"""The serving benchmark's workloads, each a pipeline, its raw items and its build inputs.

* ``mlp``: 16 floats → MLP 16→512→512→8 → softmax → ``{"label", "score"}`` (the small forward:
  most of a request's cost is HTTP and JSON);
* ``text``: the suite's text workload (words → ids → 2-layer TransformerEncoder → ``{"label",
  "score"}``: a forward-bound workload, where batching itself is the win).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

import padlc
from benchmarks import text
from padlc import batch, transform, unbatch


def to_tensor(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


class MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(16, 512),
            torch.nn.ReLU(),
            torch.nn.Linear(512, 512),
            torch.nn.ReLU(),
            torch.nn.Linear(512, 8),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).softmax(-1)


def label_and_score(probabilities: torch.Tensor) -> dict[str, object]:
    score, label = probabilities.max(-1)
    return {"label": int(label), "score": float(score)}


def mlp_pipeline() -> padlc.Transform:
    torch.manual_seed(0)
    model = MLP().eval()
    return (
        transform(to_tensor) >> batch >> transform(model) >> unbatch >> transform(label_and_score)
    )


def mlp_items(count: int, seed: int) -> list[Any]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(count, 16, generator=generator).tolist()


def text_pipeline() -> padlc.Transform:
    return text.WORKLOAD.pipeline(text.WORKLOAD.make_model())


@dataclass(frozen=True)
class ServeWorkload:
    name: str
    description: str
    pipeline: Callable[[], padlc.Transform]
    items: Callable[[int, int], list[Any]]


WORKLOADS = {
    "mlp": ServeWorkload(
        "mlp", "16 floats → MLP 16→512→512→8 → {label, score}", mlp_pipeline, mlp_items
    ),
    "text": ServeWorkload("text", text.WORKLOAD.description, text_pipeline, text.make_items),
}
