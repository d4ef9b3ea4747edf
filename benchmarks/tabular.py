"""tabular: a dict of named features (numbers and categories) → feature vector → MLP →
{segment, confidence, runner_up}. Dict inputs, category lookups and a dict output per item."""

from __future__ import annotations

import random

import torch

from benchmarks.workload import Workload

CITIES = ("berlin", "lisbon", "oslo", "paris", "rome", "vienna", "warsaw", "zurich")
PLANS = ("free", "plus", "pro")
SEGMENTS = ("casual", "regular", "power", "dormant", "new")
NUMERIC = {"age": (40.0, 12.0), "income": (50_000.0, 20_000.0), "hours": (20.0, 10.0)}
FEATURES = len(NUMERIC) + len(CITIES) + len(PLANS)


def make_items(count: int, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    return [
        {
            "age": rng.uniform(18, 80),
            "income": rng.uniform(5_000, 150_000),
            "hours": rng.uniform(0, 60),
            "city": rng.choice(CITIES),
            "plan": rng.choice(PLANS),
        }
        for _ in range(count)
    ]


def to_features(record: dict[str, object]) -> torch.Tensor:
    values = [(float(record[name]) - mean) / std for name, (mean, std) in NUMERIC.items()]  # type: ignore[arg-type]
    values += [float(record["city"] == city) for city in CITIES]
    values += [float(record["plan"] == plan) for plan in PLANS]
    return torch.tensor(values, dtype=torch.float32)


class TabularMLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(FEATURES, 64),
            torch.nn.ReLU(),
            torch.nn.Linear(64, 64),
            torch.nn.ReLU(),
            torch.nn.Linear(64, len(SEGMENTS)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).softmax(-1)


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return TabularMLP().eval()


def segment(probabilities: torch.Tensor) -> dict[str, object]:
    scores, indices = probabilities.topk(2)
    return {
        "segment": SEGMENTS[int(indices[0])],
        "confidence": float(scores[0]),
        "runner_up": SEGMENTS[int(indices[1])],
    }


WORKLOAD = Workload(
    name="tabular",
    description="dict of 5 features → one-hot + scaling → MLP 14→64→64→5 → {segment, confidence, runner_up}",
    make_items=make_items,
    preprocess=to_features,
    make_model=make_model,
    postprocess=segment,
    items={"small": 10_000, "full": 200_000},
)
