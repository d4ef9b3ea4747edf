"""Real models, written as users write them: model instances from small configs with random
weights (no downloads), wrapped with ``transform(instance)``, built by
tests/e2e/test_build_real_models.py and timed by benchmarks/real_models.py.

The image rows are transformers' ViT and ResNet: PyPI's torchvision does not run with the CPU
build of torch this project pins (``operator torchvision::nms does not exist``).

The text rows tokenize in the preprocess with a BERT WordPiece tokenizer built from a vocab file
the caller writes (:func:`write_vocab`), held by an instance of a plain class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from padlc import Transform, batch, identity, same, transform, unbatch

WORDS = [
    "the",
    "a",
    "cat",
    "dog",
    "sat",
    "ran",
    "on",
    "mat",
    "fast",
    "slow",
    "big",
    "small",
    "red",
    "blue",
    "green",
    "house",
    "tree",
    "bird",
    "sings",
    "sleeps",
    "jumps",
    "over",
    "under",
    "near",
    "far",
    "happy",
    "sad",
]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
LENGTH = 12  # tokens per text, padded: the compiled forwards take fixed shapes
TEXTS = ("the cat sat on the mat", "a big dog ran fast", "green bird sings near the tree")
LABELS = ("negative", "neutral", "positive")


def write_vocab(folder: Path) -> Path:
    """The WordPiece vocabulary file the text pipelines' tokenizer reads."""
    path = folder / "vocab.txt"
    path.write_text("\n".join(SPECIAL + WORDS) + "\n", encoding="utf-8")
    return path


def vocab_size() -> int:
    return len(SPECIAL) + len(WORDS)


class Tokenize:
    """Text -> ``LENGTH`` token ids, with a BERT WordPiece tokenizer built from a vocab file."""

    def __init__(self, vocab_file: str, length: int = LENGTH) -> None:
        from transformers import BertTokenizer

        self.tokenizer = BertTokenizer(vocab_file=vocab_file)
        self.length = length

    def __call__(self, text: str) -> torch.Tensor:
        encoded = self.tokenizer(
            text, padding="max_length", truncation=True, max_length=self.length
        )
        return torch.tensor(encoded["input_ids"])


def images(n: int = 3, size: int = 32) -> list[torch.Tensor]:
    """Raw items of the image rows: uint8 HWC images."""
    generator = torch.Generator().manual_seed(0)
    return [torch.randint(0, 256, (size, size, 3), dtype=torch.uint8, generator=generator) for _ in range(n)]  # fmt: skip


def to_label(index: torch.Tensor) -> str:
    return LABELS[int(index)]


# -- image rows -----------------------------------------------------------------------------------
def vit() -> Transform:
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    config = ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, num_labels=3,
    )  # fmt: skip
    model = ViTForImageClassification(config).eval()
    return (
        same.float() >> same.div(255.0) >> same.permute(2, 0, 1)
        >> batch >> transform(model) >> same.logits >> unbatch >> same.softmax(-1)
    )  # fmt: skip


def resnet() -> Transform:
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    config = ResNetConfig(embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], num_labels=3)
    model = ResNetForImageClassification(config).eval()
    return (
        same.float() >> same.div(255.0) >> same.permute(2, 0, 1)
        >> batch >> transform(model) >> same.logits >> unbatch
        >> same.argmax(-1) >> transform(to_label)
    )  # fmt: skip


# -- text rows ------------------------------------------------------------------------------------
def bert(vocab_file: Path) -> Transform:
    from transformers import AutoModelForSequenceClassification, BertConfig

    vocab = str(vocab_file)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=32, num_labels=3,
    )  # fmt: skip
    classifier = AutoModelForSequenceClassification.from_config(config).eval()
    return (
        transform(Tokenize(vocab)) >> batch >> transform(classifier) >> same.logits
        >> unbatch >> (same.softmax(-1) + (same.argmax(-1) >> transform(to_label)))
    )  # fmt: skip


def sequence_logprob(ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """The mean log-probability of each text's next tokens under the language model."""
    logprobs = logits[:, :-1].log_softmax(-1)
    return logprobs.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1).mean(-1)


def gpt2(vocab_file: Path) -> Transform:
    from transformers import AutoModelForCausalLM, GPT2Config

    vocab = str(vocab_file)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=vocab_size(), n_positions=32, n_embd=32, n_layer=2, n_head=2,
        bos_token_id=SPECIAL.index("[CLS]"), eos_token_id=SPECIAL.index("[SEP]"),
    )  # fmt: skip
    language_model = AutoModelForCausalLM.from_config(config).eval()
    return (
        transform(Tokenize(vocab)) >> batch
        >> (identity + (transform(language_model) >> same.logits))
        >> transform(sequence_logprob) >> unbatch
    )  # fmt: skip


class Tagger(nn.Module):
    """Embedding, LSTM, a tag per token."""

    def __init__(self, vocab: int, dim: int, tags: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.lstm = nn.LSTM(dim, dim, batch_first=True)
        self.out = nn.Linear(dim, tags)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.lstm(self.embed(ids))
        return self.out(hidden)


def lstm(vocab_file: Path) -> Transform:
    vocab = str(vocab_file)
    torch.manual_seed(0)
    tagger = Tagger(vocab_size(), 16, 4).eval()
    return transform(Tokenize(vocab)) >> batch >> transform(tagger) >> unbatch


# -- data-dependent control flow ------------------------------------------------------------------
class Gate(nn.Module):
    """A layer whose output depends on Python control flow over its values."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        if y.sum() > 0:
            return y.relu()
        return -y


def to_tensor(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def gated() -> Transform:
    torch.manual_seed(0)
    return transform(to_tensor) >> batch >> transform(Gate().eval()) >> unbatch


VECTORS = ([0.5, -1.0, 2.0, 0.0], [1.0, 1.0, -3.0, 0.25], [0.0, 0.1, 0.2, 0.3])


@dataclass(frozen=True)
class Row:
    """One model of the matrix: how to make its pipeline (given the vocab file) and its inputs."""

    name: str
    make: Callable[[Path], Transform]
    inputs: Callable[[], list[Any]]


ROWS: tuple[Row, ...] = (
    Row("vit", lambda vocab: vit(), images),
    Row("resnet", lambda vocab: resnet(), images),
    Row("bert", bert, lambda: list(TEXTS)),
    Row("gpt2", gpt2, lambda: list(TEXTS)),
    Row("lstm", lstm, lambda: list(TEXTS)),
)
#: the model whose forward export and onnx cannot compile (TorchScript can)
GATED = Row("gated", lambda vocab: gated(), lambda: list(VECTORS))
