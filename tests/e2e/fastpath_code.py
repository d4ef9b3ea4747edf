"""A text classifier on PyTorch's default TransformerEncoder (nested tensors enabled) with a
padding mask: eager inference packs the padded batch into a nested tensor."""

from __future__ import annotations

import torch
from torch import nn

from padlc import batch, transform, unbatch

LENGTH = 8


def to_ids(text: str) -> torch.Tensor:
    ids = [1 + sum(map(ord, word)) % 19 for word in text.split()][:LENGTH]
    return torch.tensor(ids + [0] * (LENGTH - len(ids)), dtype=torch.long)  # 0: padding


class PaddedEncoder(nn.Module):
    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.embedding = nn.Embedding(20, 16)
        layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2)
        self.head = nn.Linear(16, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(self.embedding(ids), src_key_padding_mask=ids == 0)
        return self.head(hidden.mean(1))  # the padded positions count in the mean


torch.manual_seed(0)
PIPELINE = transform(to_ids) >> batch >> transform(PaddedEncoder)() >> unbatch
INPUTS = ["the cat sat", "a dog ran fast over the hill", "hello", "one two three four"]
