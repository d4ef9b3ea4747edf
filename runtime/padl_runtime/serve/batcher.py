"""Dynamic batching that knows the stages: items of concurrent requests, one forward per batch.

Requests hand their raw items to :meth:`Batcher.submit` on the event loop and await one future
per request. One thread, off the event loop, runs the forward:

1. **preprocess**: in the forward thread, per batch (``workers=0``); or, with worker processes, as
   soon as a request arrives, in parallel, so that only preprocessed items wait for a batch;
2. **batch**: the thread takes what is queued, up to ``max_batch`` items. It holds a batch open
   for more only while more are on their way (requests being read, items being preprocessed),
   and never longer than ``max_wait`` after its first item arrived: a lone request is not held
   back, and under load the batch fills while the previous forward runs;
3. **forward**: ``CompiledPipeline.forward_items``, once per batch (an item that cannot be
   batched, or whose forward raises, fails alone);
4. **postprocess**: in the thread, or in the worker processes while the thread runs the next
   forward;
5. each request's future gets exactly its own results (outputs, or ``ItemError`` for the items
   that failed), through one ``call_soon_threadsafe`` per batch.

The queue is bounded (``max_queue`` items accepted and not yet in a batch: :class:`Overloaded`
beyond), a request past its deadline gets :class:`TimeoutError` and its queued items are dropped,
and :meth:`close` finishes what was accepted before it returns.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from padl_runtime.failures import ItemError
from padl_runtime.pipeline import CompiledPipeline
from padl_runtime.serve.metrics import Metrics
from padl_runtime.serve.workers import StageWorkers

__all__ = ["Batcher", "Overloaded"]

_log = logging.getLogger("padl_runtime.serve")


class Overloaded(Exception):
    """The queue is full: the request is refused (HTTP 503) and may be retried after
    ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(eq=False, slots=True)
class _Ticket:
    """One request: its future, its results as they come, and how many are missing."""

    future: asyncio.Future[list[Any]]
    results: list[Any]
    missing: int
    expired: bool = False
    timer: asyncio.TimerHandle | None = None


@dataclass(slots=True)
class _Entry:
    ticket: _Ticket
    index: int
    value: Any
    arrived: float = field(default_factory=time.perf_counter)


_STOP = object()


class Batcher:
    """Batches the items of concurrent requests through ``pipeline`` (see the module docstring).

    Start it on the event loop that will call :meth:`submit` (:meth:`start`); :meth:`close` stops
    it after finishing every accepted item.
    """

    def __init__(
        self,
        pipeline: CompiledPipeline,
        *,
        max_batch: int = 64,
        max_wait: float = 0.002,
        max_queue: int = 1024,
        timeout: float | None = 30.0,
        workers: int = 0,
        metrics: Metrics | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}.")
        if max_wait < 0:
            raise ValueError(f"max_wait must be >= 0 seconds, got {max_wait}.")
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}.")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds (or None), got {timeout}.")
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}.")
        self.pipeline = pipeline
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.max_queue = max_queue
        self.timeout = timeout
        self.metrics = metrics or Metrics()
        self._worker_count = workers
        self._workers: StageWorkers | None = None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # Counted on the event loop (accepted, arriving) and in the threads (taken, preparing);
        # an int read is atomic, so the forward thread reads them without a lock.
        self._accepted = 0
        self._taken = 0
        self._arriving = 0  # requests being read on the event loop
        self._preparing = 0  # items in the preprocess workers
        self._lock = threading.Lock()  # _taken and _preparing (two threads change them)
        self._items_per_second = 0.0
        self._closing = False

    # -- lifecycle -------------------------------------------------------------------------------
    def start(
        self, loop: asyncio.AbstractEventLoop | None = None, ready_timeout: float = 120.0
    ) -> None:
        """Start the forward thread (and the worker processes, waiting until they have loaded the
        artifact's stage module)."""
        self._loop = loop or asyncio.get_running_loop()
        if self._worker_count:
            functions = {
                stage: f
                for stage, f in (
                    ("preprocess", self.pipeline.preprocess),
                    ("postprocess", self.pipeline.postprocess),
                )
                if f is not None
            }
            if functions:
                self._workers = StageWorkers(functions, self._worker_count)
                if not self._workers.wait_ready(ready_timeout):
                    self._workers.close()
                    raise RuntimeError(
                        f"The {self._worker_count} stage worker processes did not load the "
                        f"artifact within {ready_timeout:.0f} s."
                    )
        self._thread = threading.Thread(target=self._run, name="padl-serve-forward", daemon=True)
        self._thread.start()

    def close(self, timeout: float | None = None) -> None:
        """Finish every accepted item, then stop the thread and the worker processes."""
        self._closing = True
        if self._thread is not None:
            deadline = None if timeout is None else time.monotonic() + timeout
            while self.depth > 0 and (deadline is None or time.monotonic() < deadline):
                time.sleep(0.01)  # items still in preprocess workers reach the queue
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None
        if self._workers is not None:
            self._workers.close()
            self._workers = None

    @property
    def worker_pids(self) -> list[int]:
        return self._workers.pids() if self._workers is not None else []

    @property
    def depth(self) -> int:
        """Items accepted and not yet in a forward batch (waiting or being preprocessed)."""
        return self._accepted - self._taken

    # -- the event loop's side -------------------------------------------------------------------
    def arriving(self, delta: int) -> None:
        """A request started (+1) or finished (-1) being read: the forward thread may hold a
        batch open for it (up to ``max_wait``)."""
        self._arriving += delta

    def submit(self, items: Sequence[Any]) -> asyncio.Future[list[Any]]:
        """Queue a request's raw items; the future's result is one result per item, in order
        (the output, or an :class:`~padl_runtime.ItemError`). Raises :class:`Overloaded` when
        the queue has no room for them; the future raises :class:`TimeoutError` past
        ``timeout``. Call on the event loop given to :meth:`start`."""
        loop = self._loop
        if loop is None or self._thread is None or self._closing:
            raise Overloaded("The server is shutting down.", retry_after=1)
        count = len(items)
        depth = self.depth
        if depth + count > self.max_queue:
            rate = self._items_per_second
            wait = math.ceil(depth / rate) if rate > 0 else 1
            raise Overloaded(
                f"The queue is full ({depth} items waiting, at most {self.max_queue}); retry "
                "later, or start the server with a larger --max-queue.",
                retry_after=max(1, min(wait, 60)),
            )
        future: asyncio.Future[list[Any]] = loop.create_future()
        ticket = _Ticket(future, [None] * count, count)
        if self.timeout is not None:
            ticket.timer = loop.call_later(self.timeout, self._expire, ticket)
        self._accepted += count
        self.metrics.queue_depth.inc(count)
        if self._workers is not None and self.pipeline.preprocess is not None:
            with self._lock:
                self._preparing += count
            now = time.perf_counter()
            self._workers.submit(
                "preprocess", list(items), lambda values: self._prepared(ticket, values, now)
            )
        else:
            put = self._queue.put
            for index, item in enumerate(items):
                put(_Entry(ticket, index, item))
        return future

    def _expire(self, ticket: _Ticket) -> None:
        ticket.expired = True
        if not ticket.future.done():
            ticket.future.set_exception(
                TimeoutError(f"The request took longer than the timeout ({self.timeout:g} s).")
            )

    def _deliver(self, done: list[tuple[_Ticket, int, Any]]) -> None:
        """On the event loop: each result into its request; a complete request's future is set."""
        for ticket, index, result in done:
            ticket.results[index] = result
            ticket.missing -= 1
            if ticket.missing == 0:
                if ticket.timer is not None:
                    ticket.timer.cancel()
                if not ticket.future.done():
                    ticket.future.set_result(ticket.results)

    # -- the worker processes' side --------------------------------------------------------------
    def _prepared(self, ticket: _Ticket, values: list[Any], started: float) -> None:
        """Preprocessed values back from a worker (the results thread): failures are answered at
        once, the rest queued for a batch."""
        self.metrics.preprocess_seconds.observe(time.perf_counter() - started)
        failed = []
        for index, value in enumerate(values):
            if isinstance(value, ItemError):
                failed.append((ticket, index, value))
            else:
                self._queue.put(_Entry(ticket, index, value, started))
        with self._lock:
            self._preparing -= len(values)
            self._taken += len(failed)
        if failed:
            self._count_errors([r for _, _, r in failed])
            self.metrics.queue_depth.dec(len(failed))
            self._send(failed)

    def _send(self, done: list[tuple[_Ticket, int, Any]]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._deliver, done)

    def _count_errors(self, results: list[Any]) -> None:
        for result in results:
            if isinstance(result, ItemError):
                self.metrics.item_errors.labels(result.stage).inc()

    # -- the forward thread ----------------------------------------------------------------------
    def _next_batch(self, first: _Entry) -> tuple[list[_Entry], bool]:
        """``first`` and what follows it, up to ``max_batch``; True when the stop mark was met."""
        batch = [first]
        get, get_nowait = self._queue.get, self._queue.get_nowait
        deadline = first.arrived + self.max_wait
        while len(batch) < self.max_batch:
            try:
                entry = get_nowait()
            except queue.Empty:
                # Hold the batch open only while more items are on their way.
                if self._arriving <= 0 and self._preparing <= 0:
                    break
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    entry = get(timeout=remaining)
                except queue.Empty:
                    break
            if entry is _STOP:
                return batch, True
            batch.append(entry)
        return batch, False

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            batch, stopping = self._next_batch(first)
            try:
                self._process(batch)
            except BaseException as exc:  # never leave a request waiting
                _log.exception("The forward thread failed on a batch of %d items", len(batch))
                failure = ItemError.from_exception(exc, 0, "forward")
                self._send([(e.ticket, e.index, failure.at(e.index)) for e in batch])

    def _process(self, batch: list[_Entry]) -> None:
        metrics = self.metrics
        started = time.perf_counter()
        with self._lock:
            self._taken += len(batch)
        metrics.queue_depth.dec(len(batch))
        live = [e for e in batch if not e.ticket.expired]
        if not live:
            return
        metrics.queue_seconds.observe(started - live[0].arrived)
        metrics.batch_size.observe(len(live))
        values = [e.value for e in live]
        pipeline = self.pipeline
        workers = self._workers
        if workers is None or pipeline.preprocess is None:
            values = pipeline.preprocess_items(values, return_exceptions=True)
            preprocessed = time.perf_counter()
            metrics.preprocess_seconds.observe(preprocessed - started)
        else:
            preprocessed = started
        outputs = pipeline.forward_items(values, return_exceptions=True)
        forwarded = time.perf_counter()
        metrics.forward_seconds.observe(forwarded - preprocessed)
        if workers is not None and pipeline.postprocess is not None:
            ok = [i for i, o in enumerate(outputs) if not isinstance(o, ItemError)]
            failed = [
                (live[i].ticket, live[i].index, o)
                for i, o in enumerate(outputs)
                if isinstance(o, ItemError)
            ]
            if failed:
                self._count_errors([r for _, _, r in failed])
                self._send(failed)
            if ok:
                entries = [live[i] for i in ok]
                workers.submit(
                    "postprocess",
                    [outputs[i] for i in ok],
                    lambda results: self._postprocessed(entries, results, forwarded),
                )
        else:
            results = pipeline.postprocess_items(outputs, return_exceptions=True)
            finished = time.perf_counter()
            metrics.postprocess_seconds.observe(finished - forwarded)
            self._count_errors(results)
            self._send([(e.ticket, e.index, r) for e, r in zip(live, results, strict=True)])
        elapsed = time.perf_counter() - started
        if elapsed > 0:  # a rough rate, for the Retry-After of a full queue
            self._items_per_second = 0.8 * self._items_per_second + 0.2 * len(live) / elapsed

    def _postprocessed(self, entries: list[_Entry], results: list[Any], started: float) -> None:
        self.metrics.postprocess_seconds.observe(time.perf_counter() - started)
        self._count_errors(results)
        self._send([(e.ticket, e.index, r) for e, r in zip(entries, results, strict=True)])
