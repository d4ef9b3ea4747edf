"""Handwritten-digit recognition as one padlc pipeline (the ``padlc demo`` example).

Raw input: one 8×8 uint8 image (scikit-learn's bundled ``load_digits``, pixel values 0–16).
Output: ``{"digit": int, "confidence": float}``.

    python examples/digits.py            # trains for a few seconds, prints the test accuracy
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from padlc import batch, same, transform, unbatch

PIXEL_MAX = 16.0  # load_digits stores 4-bit intensities


@transform
def to_tensor(image):
    """One raw 8×8 uint8 image → a 1×8×8 float tensor in [0, 1]."""
    return torch.from_numpy(np.asarray(image, dtype=np.float32)).unsqueeze(0) / PIXEL_MAX


@transform
class DigitNet(nn.Module):
    """A small CNN: two 3×3 convolutions, a pooling, two linear layers."""

    def __init__(self, channels=16, hidden=64):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, 2 * channels, 3, padding=1)
        self.dropout = nn.Dropout(0.1)
        self.fc1 = nn.Linear(2 * channels * 4 * 4, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = self.dropout(x.flatten(1))
        return self.fc2(F.relu(self.fc1(x)))


@transform
def to_prediction(probabilities):
    confidence, digit = probabilities.max(-1)
    return {"digit": int(digit), "confidence": float(confidence)}


@transform
def label_tensor(label):
    return torch.tensor(label, dtype=torch.long)


cross_entropy = transform(F.cross_entropy)

torch.manual_seed(0)  # the same initial weights every run, so the demo's accuracy is reproducible
model = DigitNet()
classify = to_tensor >> batch >> model >> same.softmax(-1) >> unbatch >> to_prediction
# Training pairs (image, label): the image through the network, the label alongside, then the loss.
train_loss = (to_tensor >> batch >> model) / (label_tensor >> batch) >> cross_entropy


def load_data(seed=0):
    """(train pairs, test images, test labels): a stratified-enough 80/20 split of load_digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.uint8)
    labels = digits.target.astype(int)
    order = np.random.default_rng(seed).permutation(len(images))
    cut = int(0.8 * len(images))
    train, test = order[:cut], order[cut:]
    train_pairs = [(images[i], int(labels[i])) for i in train]
    return train_pairs, [images[i] for i in test], [int(labels[i]) for i in test]


def train(pairs, epochs=8, batch_size=64, lr=3e-3, progress=False, seed=0):
    """Train ``model`` with ``train_loss.train_apply``; returns the last epoch's mean loss."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(train_loss.pd_parameters(), lr=lr)
    mean = float("nan")
    for _ in range(epochs):
        total, count = 0.0, 0
        for loss in train_loss.train_apply(
            pairs, batch_size=batch_size, shuffle=True, progress=progress
        ):
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, count = total + loss.item(), count + 1
        mean = total / count
    return mean


def accuracy(images, labels, batch_size=256):
    predictions = classify.eval_apply(images, batch_size=batch_size)
    hits = sum(p["digit"] == y for p, y in zip(predictions, labels))
    return hits / len(labels)


if __name__ == "__main__":
    train_pairs, test_images, test_labels = load_data()
    train(train_pairs, progress=True)
    print(f"test accuracy: {accuracy(test_images, test_labels):.3f}")
    print(classify.infer_apply(test_images[0]), "true label:", test_labels[0])
