"""A pipeline whose preprocess and model constructor read the same vocabulary (large enough to be
stored as a data file), for tests of what a built artifact stores once."""

from __future__ import annotations

import torch
from torch import nn

from padlc import batch, transform, unbatch

VOCABULARY = {f"w{index}": index + 2 for index in range(300)}


def to_ids(text: str) -> torch.Tensor:
    ids = [VOCABULARY.get(word, 1) for word in text.split()][:8]
    return torch.tensor(ids + [0] * (8 - len(ids)), dtype=torch.long)


class Classifier(nn.Module):
    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.embedding = nn.Embedding(len(VOCABULARY) + 2, 8)
        self.head = nn.Linear(8, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(ids).mean(1))


def top(scores: torch.Tensor) -> int:
    return int(scores.argmax())


torch.manual_seed(0)
PIPELINE = transform(to_ids) >> batch >> transform(Classifier)() >> unbatch >> transform(top)
INPUTS = ["w1 w2 w3", "w10 w200 unknown", "w299", "w5 w5 w5 w5 w5 w5 w5 w5 w5"]
