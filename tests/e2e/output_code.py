"""A pipeline whose postprocess returns an instance of a user class (a dataclass), and an enum."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch
from torch import nn

from padlc import batch, transform, unbatch


class Sign(enum.Enum):
    NEGATIVE = -1
    POSITIVE = 1


@dataclass
class Prediction:
    sign: Sign
    score: float


def to_tensor(x: float) -> torch.Tensor:
    return torch.tensor([x], dtype=torch.float32)


def predict(score: torch.Tensor) -> Prediction:
    value = float(score)
    return Prediction(Sign.POSITIVE if value >= 0 else Sign.NEGATIVE, value)


torch.manual_seed(0)
pipeline = transform(to_tensor) >> batch >> transform(nn.Linear)(1, 1) >> unbatch >> predict
examples = [1.0, -2.0, 3.0]

# Without `unbatch`: infer_apply returns the forward's output with its batch axis.
unbatched = transform(to_tensor) >> batch >> transform(nn.Linear)(1, 2)
