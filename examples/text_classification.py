"""Sentiment of short texts: a vocabulary lookup and padding before `batch`, an embedding bag model,
and a label with a score after `unbatch`. Synthetic data, so it runs anywhere in a few seconds.

    python examples/text_classification.py [OUT_DIR]

The vocabulary is built from the training data by a loop; `padlc.save` stores it by value (a data
file), so the saved pipeline reproduces exactly what was trained.
"""

import random
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

import padlc
from padlc import batch, transform, unbatch

MAX_LEN = 16
PAD, UNKNOWN = 0, 1
LABELS = ["negative", "positive"]

POSITIVE = ["good", "great", "lovely", "excellent", "fun", "wonderful", "tasty", "happy"]
NEGATIVE = ["bad", "awful", "boring", "terrible", "sad", "bland", "poor", "ugly"]
NEUTRAL = ["the", "a", "film", "meal", "day", "was", "very", "quite", "and", "it", "really"]


def make_data(n, seed):
    rng = random.Random(seed)
    data = []
    for _ in range(n):
        label = rng.randrange(2)
        words = rng.choices(NEUTRAL, k=rng.randint(3, 8))
        words += rng.choices(POSITIVE if label else NEGATIVE, k=rng.randint(1, 3))
        rng.shuffle(words)
        data.append((" ".join(words), label))
    return data


TRAIN = make_data(2000, seed=0)
vocabulary = {"<pad>": PAD, "<unk>": UNKNOWN}
for text, _ in TRAIN:
    for word in text.split():
        vocabulary.setdefault(word, len(vocabulary))


@transform
def tokenize(text):
    ids = [vocabulary.get(word, UNKNOWN) for word in text.lower().split()][:MAX_LEN]
    return torch.tensor(ids + [PAD] * (MAX_LEN - len(ids)), dtype=torch.long)


@transform
class BagOfWords(nn.Module):
    def __init__(self, vocabulary_size, dim=32):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary_size, dim, padding_idx=PAD)
        self.out = nn.Linear(dim, len(LABELS))

    def forward(self, ids):
        mask = (ids != PAD).unsqueeze(-1).float()
        pooled = (self.embedding(ids) * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.out(pooled).softmax(-1)


@transform
def to_label(probabilities):
    score, index = probabilities.max(-1)
    return {"label": LABELS[int(index)], "score": round(float(score), 4)}


model = BagOfWords(len(vocabulary))
classify = tokenize >> batch >> model >> unbatch >> to_label
train_loss = (tokenize >> batch >> model) / (transform(torch.tensor) >> batch) >> transform(
    lambda probabilities, labels: nn.functional.nll_loss(probabilities.log(), labels)
)


def main(out_dir):
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(train_loss.pd_parameters(), lr=0.02)
    for _ in range(3):
        for loss in train_loss.train_apply(TRAIN, batch_size=64, shuffle=True):
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    test = make_data(200, seed=1)
    predictions = list(classify.eval_apply([text for text, _ in test]))
    accuracy = sum(p["label"] == LABELS[y] for p, (_, y) in zip(predictions, test)) / len(test)
    print(f"accuracy on held-out texts: {accuracy:.3f}")
    print(classify.infer_apply("a really wonderful and tasty meal"))

    saved = padlc.save(classify, Path(out_dir) / "sentiment.padl", force_overwrite=True)
    print(f"saved to {saved}")
    built = padlc.build(
        classify,
        Path(out_dir) / "sentiment-built.padl",
        inputs=[text for text, _ in test[:8]],
        force_overwrite=True,
    )
    print(built.report())
    return accuracy


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="padlc-text-"))
