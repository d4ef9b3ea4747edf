"""CUDA copies for the executor: batches to the device on a side stream, overlapped with the
forward, and forward outputs back to the CPU asynchronously."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from padl_runtime._batch_source import Batch
from padl_runtime.collate import move_to_device, pin, unpin

__all__ = ["PendingCopy", "cuda_prefetch"]


def _record_stream(value: Any, stream: torch.cuda.Stream) -> None:
    if isinstance(value, torch.Tensor):
        if value.is_cuda:
            value.record_stream(stream)
    elif isinstance(value, dict):
        for item in value.values():
            _record_stream(item, stream)
    elif isinstance(value, list | tuple):
        for item in value:
            _record_stream(item, stream)


def cuda_prefetch(
    batches: Iterator[Batch], device: torch.device, pin_here: bool
) -> Iterator[Batch]:
    """Copy batch k+1 to the GPU on a side stream while the forward of batch k runs.

    The copy of the next batch is issued before the current one is handed out, so it overlaps
    with that batch's forward. Before a batch is used, the consumer's stream waits for the copy
    stream; ``record_stream`` tells the caching allocator that the copied tensors (allocated on the
    side stream) are in use on the consumer's stream, so their memory is not reused too early.
    Pinned host memory is kept alive by torch's host allocator until its copy completes.
    """
    copy_stream = torch.cuda.Stream(device)

    def load(entry: Batch) -> Batch:
        start, count, batch = entry
        if pin_here:  # with workers, the DataLoader's pin thread has done it already
            batch = pin(batch)
        with torch.cuda.stream(copy_stream):
            batch = move_to_device(batch, device, non_blocking=True)
        return start, count, batch

    def load_next() -> Batch | None:
        entry = next(batches, None)
        return None if entry is None else load(entry)

    upcoming = load_next()
    while upcoming is not None:
        current = upcoming
        consumer = torch.cuda.current_stream(device)
        consumer.wait_stream(copy_stream)
        _record_stream(current[2], consumer)
        deferred: Exception | None = None
        try:
            upcoming = load_next()
        except Exception as exc:  # report it after the batch before it has been delivered
            upcoming, deferred = None, exc
        yield current
        if deferred is not None:
            raise deferred


class PendingCopy:
    """A forward output on its way to the CPU: an asynchronous device-to-host copy into pinned
    memory, issued on the forward's stream, and the event that marks its end. ``wait()`` (in the
    post stage) blocks only the thread that needs the values, with the GIL released, then copies
    them out of the pinned buffer so that what reaches the caller holds no page-locked memory."""

    __slots__ = ("event", "output")

    def __init__(self, output: Any, device: torch.device) -> None:
        self.output = move_to_device(output, "cpu", non_blocking=True)
        self.event = torch.cuda.Event()
        self.event.record(torch.cuda.current_stream(device))

    def wait(self) -> Any:
        self.event.synchronize()
        return unpin(self.output)

    def ready(self) -> Any:
        """The output once copied, still in pinned memory (for a caller that copies it anyway)."""
        self.event.synchronize()
        return self.output
