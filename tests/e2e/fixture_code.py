"""Plain user code for the build fixtures: no padlc import, so built artifacts can run it."""

from __future__ import annotations

import torch
from torch import nn

VOCAB = {
    w: i + 2
    for i, w in enumerate(["the", "a", "cat", "dog", "sat", "ran", "on", "mat", "fast", "slow"])
}
LABELS = ("negative", "positive", "neutral")


def to_image(seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (8, 8, 3), dtype=torch.uint8, generator=generator)


def tokenize(text: str) -> list[str]:
    return text.lower().split()


def lookup(words: list[str]) -> torch.Tensor:
    ids = [VOCAB.get(w, 1) for w in words][:12]
    return torch.tensor(ids + [0] * (12 - len(ids)), dtype=torch.long)


def to_tensor(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def parse_number(text: str) -> torch.Tensor:
    return torch.tensor([float(text)])


def zero() -> torch.Tensor:
    return torch.zeros(1)


def fallback(text: str) -> torch.Tensor:
    return torch.tensor([-1.0])


def label_of(logits: torch.Tensor) -> str:
    return LABELS[int(logits.argmax())]


def as_dict(label: str, score: torch.Tensor) -> dict:
    return {"label": label, "score": float(score.max())}


def top_score(probabilities: torch.Tensor) -> float:
    return round(float(probabilities.max()), 6)


def add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a + b


def scale(x: torch.Tensor) -> torch.Tensor:
    return x * 2.0


def data_dependent(x: torch.Tensor) -> torch.Tensor:
    if x.sum() > 0:  # Python control flow on a tensor value: not exportable
        return x
    return -x


class ConvNet(nn.Module):
    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).relu().mean((2, 3)))


class TextNet(nn.Module):
    def __init__(self, vocab: int = 16, dim: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(ids).mean(1))


class Encoder(nn.Module):
    def __init__(self, vocab: int = 16, dim: int = 16, classes: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        layer = nn.TransformerEncoderLayer(dim, 2, 32, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(dim, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(ids)).mean(1))


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 3)
        self.b = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.a(x) + self.b(y)


class NormNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 2)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(x)
        return logits, logits.softmax(-1)
