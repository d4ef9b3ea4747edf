"""text: random words → vocabulary ids (a dict lookup), pad/truncate to 64 → 2-layer
TransformerEncoder (d_model 64) → {label, score}."""

from __future__ import annotations

import random

import torch

from benchmarks.workload import Workload

SEQUENCE_LENGTH = 64
PAD, UNKNOWN = 0, 1
WORDS = [f"w{index:04d}" for index in range(2000)]
VOCABULARY = {word: index + 2 for index, word in enumerate(WORDS)}
LABELS = ("negative", "neutral", "positive")


def make_items(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    vocabulary = [*WORDS, "unseen", "words"]  # a few out-of-vocabulary words
    return [" ".join(rng.choices(vocabulary, k=rng.randint(8, 96))) for _ in range(count)]


def to_ids(text: str) -> torch.Tensor:
    ids = [VOCABULARY.get(word, UNKNOWN) for word in text.split()[:SEQUENCE_LENGTH]]
    ids += [PAD] * (SEQUENCE_LENGTH - len(ids))
    return torch.tensor(ids, dtype=torch.long)


class TextClassifier(torch.nn.Module):
    def __init__(self, d_model: int = 64) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(len(VOCABULARY) + 2, d_model, padding_idx=PAD)
        self.position = torch.nn.Parameter(torch.randn(SEQUENCE_LENGTH, d_model) * 0.02)
        layer = torch.nn.TransformerEncoderLayer(
            d_model, nhead=4, dim_feedforward=128, dropout=0.0, batch_first=True
        )
        self.encoder = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = torch.nn.Linear(d_model, len(LABELS))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(self.embedding(ids) + self.position)
        return self.head(hidden.mean(1)).softmax(-1)


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return TextClassifier().eval()


def label_and_score(probabilities: torch.Tensor) -> dict[str, object]:
    score, label = probabilities.max(-1)
    return {"label": LABELS[int(label)], "score": float(score)}


WORKLOAD = Workload(
    name="text",
    description="words → vocab ids, pad 64 → 2-layer TransformerEncoder (d 64) → {label, score}",
    make_items=make_items,
    preprocess=to_ids,
    make_model=make_model,
    postprocess=label_and_score,
    items={"small": 8192, "full": 100_000},
)
