"""Turning items into batches and back, and moving nested batches between devices.

Collation handles tensors, numpy arrays, Python numbers and bools, strings/bytes, tuples, lists,
namedtuples and dicts, nested to any depth. ``uncollate`` is its inverse for the structures
``collate`` produces, so ``uncollate(collate(items)) == items`` up to tensor conversion.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import get_worker_info

from padl_runtime._transport import BY_VALUE_BYTES

__all__ = [
    "add_batch_axis",
    "collate",
    "move_to_device",
    "pin",
    "remove_batch_axis",
    "uncollate",
]


def _is_namedtuple(value: object) -> bool:
    return isinstance(value, tuple) and hasattr(value, "_fields")


def _stack(items: Sequence[torch.Tensor], first: torch.Tensor) -> torch.Tensor:
    """``torch.stack``; in a DataLoader worker, a large batch goes straight into shared memory, as
    the DataLoader's own collate does: it is about to be sent to the main process, which would
    otherwise copy it into shared memory a second time. (A small one is sent by value instead.)"""
    tensors = list(items)
    if (
        get_worker_info() is None
        or first.device.type != "cpu"
        or len(tensors) * first.numel() * first.element_size() <= BY_VALUE_BYTES
        # mixed shapes: stack's own error; mixed dtypes: stack's type promotion
        or any(t.shape != first.shape or t.dtype != first.dtype for t in tensors)
    ):
        return torch.stack(tensors)
    storage = first._typed_storage()._new_shared(len(tensors) * first.numel(), device="cpu")
    out = first.new(storage).resize_(len(tensors), *first.shape)
    return torch.stack(tensors, out=out)


def collate(items: Sequence[Any]) -> Any:
    """Stack a non-empty sequence of items of the same structure into one batch (axis 0).

    >>> collate([torch.tensor([1, 2]), torch.tensor([3, 4])]).shape
    torch.Size([2, 2])
    >>> collate([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}])
    {'a': tensor([1, 2]), 'b': ['x', 'y']}
    """
    first = items[0]
    if isinstance(first, torch.Tensor):
        return _stack(items, first)
    if isinstance(first, bool | int | float):
        return torch.tensor(items)
    if type(first).__module__ == "numpy":
        import numpy as np  # numpy is optional for the runtime

        if isinstance(first, np.ndarray | np.generic):
            return torch.as_tensor(np.stack(items))
    if isinstance(first, str | bytes):
        return list(items)
    if isinstance(first, Mapping):
        return {key: collate([item[key] for item in items]) for key in first}
    if _is_namedtuple(first):
        return type(first)(*(collate(column) for column in zip(*items)))
    if isinstance(first, tuple | list):
        lengths = {len(item) for item in items}
        if len(lengths) != 1:
            raise ValueError(
                f"Cannot batch sequences of different lengths {sorted(lengths)}; pad them to one "
                "length in the preprocessing (before `batch`)."
            )
        return tuple(collate(column) for column in zip(*items))
    if first is None:
        return None
    raise TypeError(
        f"Cannot batch items of type {type(first).__name__}. Items reaching `batch` must be "
        "tensors, numbers, strings, numpy arrays, or tuples/lists/dicts of those; convert it "
        "in the preprocessing."
    )


def _batch_size(batch: Any) -> int | None:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0] if batch.dim() else None
    if isinstance(batch, Mapping):
        for value in batch.values():
            size = _batch_size(value)
            if size is not None:
                return size
        return None
    if isinstance(batch, list) and (not batch or not isinstance(batch[0], torch.Tensor | tuple)):
        return len(batch)  # a collated list of strings
    if isinstance(batch, tuple | list):
        for value in batch:
            size = _batch_size(value)
            if size is not None:
                return size
    return None


def _split(batch: Any, size: int) -> list[Any]:
    if isinstance(batch, torch.Tensor):
        return list(batch.unbind(0)) if batch.dim() else [batch] * size
    if isinstance(batch, Mapping):
        columns = {key: _split(value, size) for key, value in batch.items()}
        return [{key: column[i] for key, column in columns.items()} for i in range(size)]
    if (
        isinstance(batch, list)
        and len(batch) == size
        and all(isinstance(v, str | bytes) for v in batch)
    ):
        return list(batch)
    if _is_namedtuple(batch):
        return [type(batch)(*row) for row in zip(*(_split(value, size) for value in batch))]
    if isinstance(batch, tuple | list):
        return [tuple(row) for row in zip(*(_split(value, size) for value in batch))]
    return [batch] * size


def uncollate(batch: Any) -> list[Any]:
    """Split a batch into its items along axis 0 (the inverse of :func:`collate`).

    >>> uncollate(torch.tensor([[1, 2], [3, 4]]))
    [tensor([1, 2]), tensor([3, 4])]
    """
    size = _batch_size(batch)
    if size is None:
        raise ValueError(
            "Cannot split the forward's output into items: it holds no tensor with a batch "
            f"axis (got {type(batch).__name__}). Return batched tensors from the forward stage."
        )
    return _split(batch, size)


def _map_tensors(value: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, Mapping):
        return type(value)({k: _map_tensors(v, fn) for k, v in value.items()})  # type: ignore[call-arg]
    if _is_namedtuple(value):
        return type(value)(*(_map_tensors(v, fn) for v in value))
    if isinstance(value, tuple):
        return tuple(_map_tensors(v, fn) for v in value)
    if isinstance(value, list):
        return [_map_tensors(v, fn) for v in value]
    return value


def move_to_device(value: Any, device: torch.device | str, non_blocking: bool = False) -> Any:
    """Move every tensor in a nested structure (tuples, lists, dicts, namedtuples) to ``device``."""
    return _map_tensors(value, lambda t: t.to(device, non_blocking=non_blocking))


def pin(value: Any) -> Any:
    """Pin every CPU tensor in a nested structure (for asynchronous host-to-device copies)."""
    return _map_tensors(value, lambda t: t.pin_memory() if t.device.type == "cpu" else t)


def unpin(value: Any) -> Any:
    """Every pinned CPU tensor in a nested structure copied into ordinary memory (so outputs handed
    to the caller do not hold page-locked memory, which the executor reuses for the next batch)."""
    return _map_tensors(value, lambda t: t.clone() if t.is_pinned() else t)


def add_batch_axis(item: Any) -> Any:
    """A batch of one item: ``collate([item])``, with a fast path for a single tensor."""
    if type(item) is torch.Tensor:
        return item.unsqueeze(0)
    return collate([item])


def remove_batch_axis(batch: Any) -> Any:
    """The only item of a batch of one: ``uncollate(batch)[0]``, with a fast path for a tensor."""
    if type(batch) is torch.Tensor and batch.dim():
        return batch[0]
    return uncollate(batch)[0]
