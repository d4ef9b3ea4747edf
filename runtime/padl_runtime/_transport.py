"""How batches travel between the processes of one run, by value.

Private to the executor. torch's own way of sending a tensor to another process moves its storage
into shared memory and passes a file descriptor: the receiver connects back to the sender for
the descriptor and maps the segment, once per tensor. That is the right trade for megabytes and
the wrong one for the kilobytes most batches and forward outputs are. ``python -m
benchmarks.transport`` (main-thread CPU time per batch received from 2 DataLoader workers, on
this project's 2-core CPU): 218 µs by shared memory against 43 µs by value for 16 KiB, 225
against 156 µs for 256 KiB, even at 512 KiB, 2.4× worse by value at 1 MiB. So :func:`dumps`
sends dense tensors as their raw bytes (one copy of their memory, through ctypes: the runtime
needs no numpy), and the DataLoader path sends a batch by value only up to
:data:`BY_VALUE_BYTES`.

Every batch a worker sends is pickled in the worker itself (:class:`Pickled`), not in the
queue's feeder thread: a feeder thread that fails to pickle a value only prints the error and
drops the value, and the receiver would wait for it forever. Pickled in the worker, a value that
cannot be pickled is an exception the worker reports like any other.

Pickle is used only between the processes of a run, never for anything written to disk.
"""

from __future__ import annotations

import ctypes
import io
import pickle
from collections.abc import Mapping
from multiprocessing.reduction import ForkingPickler
from typing import Any

import torch

__all__ = [
    "BY_VALUE_BYTES",
    "Pickled",
    "by_reference",
    "by_value",
    "by_value_bytes",
    "dumps",
    "loads",
]

#: Batches whose tensors hold at most this many bytes in all travel from the DataLoader's workers
#: by value (see the module docstring for the measurement behind it).
BY_VALUE_BYTES = 256 * 1024


def _rebuild_tensor(data: bytearray, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    if not data:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(data, dtype=torch.uint8).view(dtype).reshape(shape)


def _raw_bytes(tensor: torch.Tensor) -> bytearray:
    """A copy of a contiguous CPU tensor's memory."""
    size = tensor.numel() * tensor.element_size()
    if size == 0:
        return bytearray()
    return bytearray((ctypes.c_char * size).from_address(tensor.data_ptr()))


def _plain(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is all its bytes say: a dense tensor of torch's own type (no subclass,
    not quantized) that needs no gradient. Other tensors keep torch's own pickling."""
    return (
        type(tensor) is torch.Tensor
        and tensor.layout is torch.strided
        and not tensor.is_quantized
        and not tensor.requires_grad
    )


class _Pickler(pickle.Pickler):
    """A pickler that sends plain tensors as their bytes (on the CPU) instead of torch's own
    reduction."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, torch.Tensor) and _plain(obj):
            tensor = obj.cpu().resolve_conj().resolve_neg().contiguous()
            return _rebuild_tensor, (_raw_bytes(tensor), tensor.dtype, tuple(tensor.shape))
        return NotImplemented


def dumps(value: Any) -> bytes:
    """``value`` as bytes for another process of this run (tensors by their raw bytes)."""
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return buffer.getvalue()


def loads(data: bytes) -> Any:
    return pickle.loads(data)


def by_value_bytes(value: Any) -> int | None:
    """The bytes the tensors of a nested batch (tuples, lists, dicts) hold, or ``None`` when one of
    them must keep torch's own way between processes: on a device (CUDA tensors are shared, not
    copied), needing a gradient, sparse, quantized or a subclass."""
    if isinstance(value, torch.Tensor):
        if value.device.type != "cpu" or not _plain(value):
            return None
        return value.numel() * value.element_size()
    if isinstance(value, Mapping):
        values: Any = value.values()
    elif isinstance(value, tuple | list):
        values = value
    else:
        return 0
    total = 0
    for item in values:
        size = by_value_bytes(item)
        if size is None:
            return None
        total += size
    return total


class Pickled:
    """A value pickled by the process that sends it: it travels through a multiprocessing queue as
    those bytes and unpickles as the value itself, so the receiver never sees this wrapper. Made by
    :func:`by_value` or :func:`by_reference`, which raise where the value cannot be pickled."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return loads, (self.data,)


def by_value(value: Any) -> Pickled:
    """``value`` with its plain tensors as their raw bytes (:func:`dumps`)."""
    return Pickled(dumps(value))


def by_reference(value: Any) -> Pickled:
    """``value`` as torch's multiprocessing queues send it: each tensor's storage in shared memory
    (moved there now, unless it already is), the receiver mapping the same memory."""
    return Pickled(bytes(ForkingPickler.dumps(value)))
