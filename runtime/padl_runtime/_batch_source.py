"""Where the executor's batches come from: reading, preprocessing and collating items.

Private to :mod:`padl_runtime.executor`. A batch is produced whole, in one place: inline in the
main process when there are no workers, or inside a DataLoader worker process otherwise, so that
the main process only receives finished batches. Every batch travels as a :data:`Batch` triple
``(index of its first item, number of items, collated batch)``; the indices are what the error
notes ("while preprocessing item 7") are built from.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from multiprocessing.reduction import ForkingPickler
from typing import Any

import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from padl_runtime._transport import (
    BY_VALUE_BYTES,
    Pickled,
    by_reference,
    by_value,
    by_value_bytes,
)
from padl_runtime.collate import collate

__all__ = [
    "Batch",
    "ChunkDataset",
    "ChunkStream",
    "WorkerFailure",
    "add_note",
    "batch_label",
    "inline_batches",
    "is_indexable",
    "item_label",
    "span",
]

Batch = tuple[int, int, Any]
"""``(index of the first item, number of items, collated batch)``."""

Preprocess = Callable[[Any], Any] | None


def span(start: int, count: int) -> str:
    """The items of a batch as a readable range, with an en dash: ``span(64, 64) == "64\u2013127"``."""
    return f"{start}\u2013{start + count - 1}" if count > 1 else str(start)


def item_label(items: Any, position: int) -> str:
    """How error notes name the item at ``position``: by its index in the caller's input. An input
    the caller reordered (padlc's ``shuffle=True``) maps positions back with its
    ``_padl_input_index`` method."""
    index = getattr(items, "_padl_input_index", None)
    return str(position if index is None else index(position))


def batch_label(items: Any, start: int, count: int) -> str:
    """``the batch of items 64–127``; for an input the caller reordered, the items' own indices."""
    index = getattr(items, "_padl_input_index", None)
    if index is None:
        return f"the batch of items {span(start, count)}"
    shown = ", ".join(str(index(p)) for p in range(start, start + min(count, 5)))
    return f"the batch of items {shown}{', …' if count > 5 else ''} ({count} items, reordered)"


def add_note(exc: BaseException, note: str, stage: str | None = None) -> None:
    """Attach ``note`` to ``exc`` in place, so that a bare ``raise`` keeps its type and traceback.

    ``stage`` ("preprocess", "forward", "postprocess") is also recorded as ``exc.padl_stage`` for
    callers that name the failing step themselves (it survives the trip from a worker process).
    Python 3.11+ prints notes (``add_note``). Python 3.10 does not, so there the note is also
    appended to a string first argument, which is what ``str(exc)`` shows for most exceptions.
    """
    if stage is not None:
        with contextlib.suppress(AttributeError):  # exceptions with __slots__
            exc.padl_stage = stage  # type: ignore[attr-defined]
    if sys.version_info >= (3, 11):
        exc.add_note(note)
        return
    exc.__notes__ = [*getattr(exc, "__notes__", []), note]  # type: ignore[attr-defined]  # pragma: no cover
    if exc.args and isinstance(exc.args[0], str):  # pragma: no cover
        exc.args = (f"{exc.args[0]} ({note})", *exc.args[1:])


def is_indexable(items: object) -> bool:
    """True for inputs read by position (list, tuple, range, tensor, numpy array, ...).

    Mappings have ``__getitem__`` too, but by key; they, sets and generators are read by iterating.
    """
    if isinstance(items, torch.Tensor):
        return items.dim() > 0
    kind = type(items)
    return (
        not isinstance(items, Mapping) and hasattr(kind, "__len__") and hasattr(kind, "__getitem__")
    )


def _take(iterator: Iterator[Any], count: int, start: int) -> list[Any]:
    """Read up to ``count`` items, never one more (so a generator is not advanced past the batch)."""
    chunk: list[Any] = []
    if count <= 0:
        return chunk
    try:
        for value in iterator:
            chunk.append(value)
            if len(chunk) == count:
                break
    except Exception as exc:
        add_note(exc, f"while reading item {start + len(chunk)} from the input")
        raise
    return chunk


def _build(
    raw: Iterable[Any], start: int, preprocess: Preprocess, items: Any = None
) -> tuple[int, Any]:
    """Preprocess and collate one batch; failures get a note naming the item (or the batch) by its
    index in ``items`` (see :func:`item_label`)."""
    values: list[Any] = []
    if preprocess is None:
        values = list(raw)
    else:
        try:
            # list.extend keeps what it appended before a failure, so len(values) is the index of
            # the failing item; map runs the loop in C (this is once per item).
            values.extend(map(preprocess, raw))
        except Exception as exc:
            add_note(
                exc,
                f"while preprocessing item {item_label(items, start + len(values))}",
                "preprocess",
            )
            raise
    try:
        batch = collate(values)
    except Exception as exc:
        add_note(exc, f"while collating {batch_label(items, start, len(values))}")
        raise
    return len(values), batch


def _slice_batch(items: Any, start: int, stop: int, preprocess: Preprocess) -> tuple[int, Any]:
    if preprocess is None and isinstance(items, torch.Tensor):
        # Same result as stacking the rows (a fresh contiguous tensor, so a forward that writes
        # into its input cannot touch the caller's data) without a Python step per item.
        return stop - start, items[start:stop].clone(memory_format=torch.contiguous_format)
    if isinstance(items, list | tuple):
        return _build(items[start:stop], start, preprocess)
    return _build(map(items.__getitem__, range(start, stop)), start, preprocess, items)


def inline_batches(
    items: Any, preprocess: Preprocess, batch_size: int, drop_last: bool = False
) -> Iterator[Batch]:
    """Batches built in the calling process, read lazily: at most one batch of input at a time.
    ``drop_last`` leaves out a last batch of fewer than ``batch_size`` items."""
    if is_indexable(items):
        total = len(items)
        if drop_last:
            total -= total % batch_size
        for start in range(0, total, batch_size):
            count, batch = _slice_batch(items, start, min(start + batch_size, total), preprocess)
            yield start, count, batch
        return
    iterator = iter(items)
    start = 0
    while chunk := _take(iterator, batch_size, start):
        if drop_last and len(chunk) < batch_size:
            return
        count, batch = _build(chunk, start, preprocess)
        yield start, count, batch
        start += count


@dataclass
class WorkerFailure:
    """An exception raised in a DataLoader worker, carried to the main process as a value.

    DataLoader's own re-raise (``ExceptionWrapper``) rebuilds the exception as ``type(message)``
    with the worker's traceback pasted into the message: exceptions whose constructor takes other
    arguments turn into ``RuntimeError``, and a ``KeyboardInterrupt`` in a worker makes it exit
    silently, which the main process only notices seconds later as "worker exited unexpectedly".
    Returning the exception (notes included) keeps its type, arguments and notes. It is serialised
    with ``ForkingPickler``, the pickler of the worker queues themselves, only to travel between
    processes; nothing here is ever written to an artifact.
    """

    type_name: str
    message: str
    worker_traceback: str
    notes: list[str] = field(default_factory=list)
    payload: bytes | None = None
    exc_type: type[BaseException] | None = None
    process: str = "the DataLoader worker process"

    @classmethod
    def capture(
        cls, exc: BaseException, process: str = "the DataLoader worker process"
    ) -> WorkerFailure:
        payload: bytes | None = None
        try:
            pickled = bytes(ForkingPickler.dumps(exc))
            ForkingPickler.loads(pickled)  # some exceptions serialise but cannot be rebuilt
            payload = pickled
        except Exception:
            pass
        try:
            ForkingPickler.dumps(type(exc))
            exc_type: type[BaseException] | None = type(exc)
        except Exception:
            exc_type = None
        return cls(
            type_name=type(exc).__qualname__,
            message=str(exc),
            worker_traceback="".join(traceback.format_tb(exc.__traceback__)),
            notes=list(getattr(exc, "__notes__", [])),
            payload=payload,
            exc_type=exc_type,
            process=process,
        )

    def rebuild(self) -> BaseException:
        """The exception to raise in the main process, with the worker's traceback as a note."""
        exc: BaseException | None = None
        if self.payload is not None:
            try:
                exc = ForkingPickler.loads(self.payload)
            except Exception:
                exc = None
        if exc is None and self.exc_type is not None:
            try:
                exc = self.exc_type(self.message)
            except Exception:
                exc = None
        if exc is None:
            exc = RuntimeError(f"{self.type_name}: {self.message}")
        if sys.version_info >= (3, 11):
            for note in self.notes:
                if note not in getattr(exc, "__notes__", []):
                    exc.add_note(note)
            exc.add_note(
                f"Traceback in {self.process} (most recent call last):\n"
                + self.worker_traceback.rstrip()
            )
        return exc


def _sendable(batch: Batch) -> Pickled:
    """A batch as it leaves a worker, pickled here (see :mod:`padl_runtime._transport` for why):
    by value when its tensors are small, plain CPU tensors (cheaper for the main process to
    receive than torch's shared memory), else in shared memory."""
    start, count, value = batch
    size = by_value_bytes(value)
    try:
        if size is not None and size <= BY_VALUE_BYTES:
            return by_value(batch)
        return by_reference(batch)
    except Exception as exc:
        add_note(
            exc,
            f"while sending the batch of items {span(start, count)} from the DataLoader worker "
            "to the main process: what the preprocess returns must be picklable (tensors, "
            "numbers, strings, and lists, tuples or dicts of them); or use num_workers=0",
        )
        raise


def _in_worker(build: Callable[[], Batch]) -> Pickled | WorkerFailure:
    # BaseException: a KeyboardInterrupt or SystemExit raised by user code must reach the main
    # process too, not end the worker silently (see WorkerFailure).
    try:
        return _sendable(build())
    except BaseException as exc:
        return WorkerFailure.capture(exc)


class ChunkDataset(Dataset[Any]):
    """Item ``k`` is the whole ``k``-th batch of an indexable input, built in the worker."""

    def __init__(
        self, items: Any, preprocess: Preprocess, batch_size: int, drop_last: bool = False
    ) -> None:
        self.items = items
        self.preprocess = preprocess
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.items) // self.batch_size
        return -(-len(self.items) // self.batch_size)

    def __getitem__(self, k: int) -> Pickled | WorkerFailure:
        def build() -> Batch:
            start = k * self.batch_size
            stop = min(start + self.batch_size, len(self.items))
            return (start, *_slice_batch(self.items, start, stop, self.preprocess))

        return _in_worker(build)


class ChunkStream(IterableDataset[Any]):
    """Batches of a plain iterable: worker ``w`` of ``n`` builds chunks ``w, w + n, w + 2n, ...``.

    Each worker iterates its own copy of the input and skips the other workers' chunks. DataLoader
    takes results from the workers round-robin, so the batches arrive in input order.
    """

    def __init__(
        self,
        items: Iterable[Any],
        preprocess: Preprocess,
        batch_size: int,
        drop_last: bool = False,
    ) -> None:
        self.items = items
        self.preprocess = preprocess
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[Pickled | WorkerFailure]:
        info = get_worker_info()
        workers, me = (info.num_workers, info.id) if info is not None else (1, 0)
        try:
            iterator = iter(self.items)
        except BaseException as exc:
            yield WorkerFailure.capture(exc)
            return
        start = 0
        for chunk_index in itertools.count():
            mine = chunk_index % workers == me
            try:
                chunk = _take(iterator, self.batch_size, start)
                if not chunk or (self.drop_last and len(chunk) < self.batch_size):
                    return
                if mine:
                    batch = _sendable((start, *_build(chunk, start, self.preprocess)))
            except BaseException as exc:
                # The worker owning the failing chunk reports first, in order; others stop here.
                yield WorkerFailure.capture(exc)
                return
            if mine:
                yield batch
            start += len(chunk)
