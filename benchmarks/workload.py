"""A workload is declared once (items, preprocess, model, postprocess); everything else derives
from that declaration: the padlc pipeline here, the hand-written loops in benchmarks/handwritten.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

import padlc
from padlc import batch, transform, unbatch


@dataclass(frozen=True)
class Workload:
    """One benchmark workload.

    ``make_items(count, seed)`` returns synthetic raw items; ``preprocess`` maps one raw item to
    the tensor(s) of one item; ``make_model()`` returns the network (in eval mode, seeded), which
    takes a collated batch; ``postprocess`` maps one item's slice of the network's output to the
    final result. ``items`` gives the default item count for each ``--size``.
    """

    name: str
    description: str
    make_items: Callable[[int, int], list[Any]]
    preprocess: Callable[[Any], Any]
    make_model: Callable[[], torch.nn.Module]
    postprocess: Callable[[Any], Any]
    items: dict[str, int] = field(default_factory=lambda: {"small": 4096, "full": 100_000})
    #: Also time the PADL-0.2-style per-item postprocessing loop (see handwritten.padl_style_loop).
    padl_style: bool = False

    def pipeline(self, model: torch.nn.Module) -> padlc.Transform:
        """The padlc pipeline built from the same three functions and model."""
        return (
            transform(self.preprocess)
            >> batch
            >> transform(model)
            >> unbatch
            >> transform(self.postprocess)
        )


def rows(output: Any) -> list[Any]:
    """Split a batch output (a tensor, or a tuple/list/dict of them) into per-item values, the way
    a hand-written loop does: iterate over the first axis, zip the fields of a structure."""
    if isinstance(output, torch.Tensor):
        return list(output.unbind(0))
    if isinstance(output, dict):
        columns = [rows(value) for value in output.values()]
        return [dict(zip(output, values)) for values in zip(*columns)]
    if isinstance(output, tuple | list):
        return [type(output)(values) for values in zip(*(rows(value) for value in output))]
    raise TypeError(f"Cannot split a {type(output).__name__} into items.")


def first(output: Any) -> Any:
    """Item 0 of a batch of one (the hand-written single-item path)."""
    if isinstance(output, torch.Tensor):
        return output[0]
    if isinstance(output, dict):
        return {key: first(value) for key, value in output.items()}
    if isinstance(output, tuple | list):
        return type(output)(first(value) for value in output)
    raise TypeError(f"Cannot take item 0 of a {type(output).__name__}.")


def move(value: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """A batch (tensor or structure of tensors) on ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=non_blocking)
    if isinstance(value, dict):
        return {key: move(item, device, non_blocking) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return type(value)(move(item, device, non_blocking) for item in value)
    return value


def assert_same(expected: Sequence[Any], actual: Sequence[Any], what: str) -> None:
    """Fail unless the outputs agree: labels and strings exactly, floats within 1e-4 relative
    (compiled backends may reorder floating-point sums). No number is reported for wrong results."""
    if len(expected) != len(actual):
        raise AssertionError(f"{what}: {len(actual)} outputs, expected {len(expected)}")
    for index, (want, got) in enumerate(zip(expected, actual)):
        if not _close(want, got):
            raise AssertionError(f"{what}: item {index} is {got!r}, expected {want!r}")


def _close(want: Any, got: Any) -> bool:
    if isinstance(want, torch.Tensor):
        return (
            isinstance(got, torch.Tensor)
            and want.shape == got.shape
            and torch.allclose(want.float(), got.float(), rtol=1e-4, atol=1e-6)
        )
    if isinstance(want, float):
        return isinstance(got, float) and math.isclose(want, got, rel_tol=1e-4, abs_tol=1e-6)
    if isinstance(want, dict):
        return (
            isinstance(got, dict)
            and want.keys() == got.keys()
            and all(_close(want[key], got[key]) for key in want)
        )
    if isinstance(want, tuple | list):
        return (
            isinstance(got, tuple | list)
            and len(want) == len(got)
            and all(_close(a, b) for a, b in zip(want, got))
        )
    return type(want) is type(got) and want == got
