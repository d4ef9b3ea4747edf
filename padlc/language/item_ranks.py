"""A batch passed to ``infer_apply`` as if it were one item: found by the ranks of its tensors.

``infer_apply(items[:4])`` runs: the four items become one tensor with an extra leading axis, the
forward takes it as one item of that shape, and the result has an extra axis too, without a word.
Nothing in one call tells such a value from a legitimate item of that shape. What does is this
pipeline's batched runs: ``eval_apply``/``train_apply`` collate real items, so the ranks of the
forward's input are known from their first batch. ``infer_apply``'s batch of one must have the
same ranks; one axis more on every tensor is a batch given as one item, and is warned about with
what to call instead.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["ItemRanks", "ranks_of"]


def ranks_of(value: Any) -> tuple[int, ...] | None:
    """The number of axes of each tensor in ``value`` (a tensor, or tuples, lists and dicts of
    them), in order; ``None`` when it holds anything else or no tensor."""
    if isinstance(value, torch.Tensor):
        return (value.dim(),)
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, tuple | list) and value:
        ranks: list[int] = []
        for part in value:
            inner = ranks_of(part)
            if inner is None:
                return None
            ranks.extend(inner)
        return tuple(ranks)
    return None


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, tuple | list):
        for part in value:
            found = _first_tensor(part)
            if found is not None:
                return found
    return None


class ItemRanks:
    """What one pipeline's batched runs saw of the forward's input (its ranks, and the first
    tensor's item shape), which its ``infer_apply`` checks its batch of one against."""

    __slots__ = ("item_shape", "seen")

    def __init__(self) -> None:
        self.seen: tuple[int, ...] | None = None
        self.item_shape: tuple[int, ...] = ()

    def record(self, batch: Any) -> None:
        """The collated input of an ``eval_apply``/``train_apply`` forward (kept once)."""
        if self.seen is None:
            ranks = ranks_of(batch)
            first = _first_tensor(batch)
            if ranks is not None and first is not None:
                self.item_shape = tuple(first.shape[1:])
                self.seen = ranks

    def recording(self, forward: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """``forward``, recording its first batch."""

        def recorded(batch: Any) -> Any:
            if self.seen is None:
                self.record(batch)
            return forward(batch)

        return recorded

    def check(self, batched: Any) -> None:
        """Warn when ``infer_apply``'s batch of one has one axis more on every tensor than the
        batches of the pipeline's ``eval_apply``/``train_apply``: a batch given as one item."""
        seen = self.seen
        if seen is None:
            return
        ranks = ranks_of(batched)
        if ranks is None or len(ranks) != len(seen):
            return
        if all(r == s + 1 for r, s in zip(ranks, seen, strict=True)):
            first = _first_tensor(batched)
            shape = list(first.shape[1:]) if first is not None else []
            count = shape[0] if shape else "several"
            warnings.warn(
                f"infer_apply takes ONE item, but this item preprocesses to shape {shape}, one "
                f"axis more than the items of this pipeline's eval_apply/train_apply "
                f"({list(self.item_shape)}): it looks like a batch of {count} items, which the "
                "forward takes as one item (and the output has the extra axis too). For many "
                "items use eval_apply(items); for one, infer_apply(items[0]).",
                UserWarning,
                stacklevel=_caller_level(),
            )


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside padlc: the user's ``infer_apply`` call,
    however deeply the pipeline nests ``batch``."""
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith("padlc."):
        frame = frame.f_back
        level += 1
    return level
