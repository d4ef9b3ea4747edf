"""Postprocessing in worker processes (the executor's ``post_workers``).

Private to :mod:`padl_runtime.executor`. On a GPU machine the main process is what bounds
``eval_apply``: receiving batches, launching the forward and postprocessing every item all need its
one GIL, and a post *thread* only moves the per-item Python work around under the same lock. Worker
processes take it away: the main process sends each batch's forward output (already on the CPU)
to a worker, which splits it into items, postprocesses them and sends the list back.

Transport is one pair of pipes per worker, batches dealt round-robin and read back in the same
order, so outputs keep input order with no reordering buffer. Forward outputs and results travel
by value (:mod:`padl_runtime._transport`): a forward typically returns a few kilobytes per batch,
for which torch's shared-memory tensors cost more than a copy. A worker exits when it reads the
stop message, when the main process closes its pipe or exits (it watches the parent's
sentinel), so none outlives the run.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection, wait
from typing import Any

import torch

from padl_runtime._batch_source import WorkerFailure, add_note, span
from padl_runtime._cuda import PendingCopy
from padl_runtime._transport import dumps, loads

__all__ = ["PostWorkers", "Split", "run_in_workers"]

_STOP = b""
_PROCESS = "a post worker process"
#: Batches queued per worker: one being postprocessed and one waiting, so a worker never idles
#: while the main process is busy, and memory stays bounded.
_QUEUED_PER_WORKER = 2

Split = Callable[[int, int, Any], list[Any]]
"""What a worker runs on one batch ``(start, count, output)``: split it into items and
postprocess each (the executor's ``_post_items`` with the run's postprocess bound)."""


def _read(inbox: Connection, parent: Any, pending: queue.SimpleQueue[bytes | None]) -> None:
    """The worker's reader thread: moves batches from the pipe to ``pending`` as they arrive, so
    the main process never blocks on a full pipe while this worker sends a result back."""
    watched = [inbox] if parent is None else [inbox, parent.sentinel]
    try:
        while True:
            if inbox not in wait(watched):  # the main process exited
                break
            data = inbox.recv_bytes()
            if data == _STOP:
                break
            pending.put(data)
    except (EOFError, OSError):  # the main process closed the pipe
        pass
    pending.put(None)


def _serve(inbox: Connection, outbox: Connection, split: Split) -> None:
    """A post worker's main loop (the target of each worker process)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    torch.set_num_threads(1)  # a forked OpenMP pool would hang; per-item work gains nothing
    pending: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    reader = threading.Thread(
        target=_read,
        args=(inbox, multiprocessing.parent_process(), pending),
        name="padl-post-reader",
        daemon=True,
    )
    reader.start()
    try:
        while (data := pending.get()) is not None:
            start, count, output = loads(data)
            try:
                results = split(start, count, output)
            except Exception as exc:
                message = dumps((False, WorkerFailure.capture(exc, _PROCESS)))
            else:
                try:
                    message = dumps((True, results))
                except Exception as exc:
                    add_note(
                        exc,
                        f"while sending the outputs of items {span(start, count)} back from a "
                        "post worker process (post_workers needs picklable outputs)",
                        "postprocess",
                    )
                    message = dumps((False, WorkerFailure.capture(exc, _PROCESS)))
                del results
            del data, output
            outbox.send_bytes(message)
    except (BrokenPipeError, EOFError, OSError):  # the main process went away
        pass


def _died(process: Any) -> RuntimeError:
    process.join(1)
    return RuntimeError(
        f"The postprocess worker process {process.name} exited unexpectedly (exit code "
        f"{process.exitcode}); it may have run out of memory or crashed in native code. "
        "Run with post_workers=0 to postprocess in this process and see the error."
    )


class PostWorkers:
    """``count`` worker processes postprocessing whole batches, results read back in order.

    Start it before any thread of the run exists (processes are forked). ``submit`` sends a batch
    to the next worker; ``take`` returns the per-item outputs of the oldest batch not yet taken;
    ``full`` says when a ``take`` is due before the next ``submit``. ``close`` stops the workers.
    """

    def __init__(self, split: Split, count: int, method: str) -> None:
        context: Any = multiprocessing.get_context(method)  # typeshed: BaseContext lacks Process
        self._workers: list[tuple[Any, Connection, Connection]] = []
        self._in_flight: deque[int] = deque()
        self._next = 0
        try:
            for index in range(count):
                worker_in, to_worker = context.Pipe(duplex=False)
                from_worker, worker_out = context.Pipe(duplex=False)
                process = context.Process(
                    target=_serve,
                    args=(worker_in, worker_out, split),
                    name=f"padl-post-{index}",
                    daemon=True,
                )
                process.start()
                worker_in.close()  # the worker's ends: only the worker keeps them open
                worker_out.close()
                self._workers.append((process, to_worker, from_worker))
        except BaseException:
            self.close()
            raise

    @property
    def full(self) -> bool:
        return len(self._in_flight) >= _QUEUED_PER_WORKER * len(self._workers)

    def __len__(self) -> int:
        """Batches submitted and not yet taken."""
        return len(self._in_flight)

    def submit(self, start: int, count: int, output: Any) -> None:
        index = self._next
        self._next = (index + 1) % len(self._workers)
        process, to_worker, _ = self._workers[index]
        try:
            to_worker.send_bytes(dumps((start, count, output)))
        except OSError:  # BrokenPipeError: that worker died after taking its previous batch
            raise _died(process) from None
        self._in_flight.append(index)

    def take(self) -> list[Any]:
        index = self._in_flight.popleft()
        process, _, from_worker = self._workers[index]
        wait([from_worker, process.sentinel])
        try:
            ok, value = loads(from_worker.recv_bytes())
        except (EOFError, OSError):
            raise _died(process) from None
        if not ok:
            raise value.rebuild()
        return value  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop every worker (waiting briefly for each, then terminating it). Idempotent."""
        workers, self._workers = self._workers, []
        self._in_flight.clear()
        for _, to_worker, _ in workers:
            with contextlib.suppress(OSError):  # that worker has gone already
                to_worker.send_bytes(_STOP)
        for process, to_worker, from_worker in workers:
            to_worker.close()
            from_worker.close()  # a worker blocked sending a result sees a broken pipe
            process.join(5)
            if process.is_alive():
                process.terminate()
                process.join(5)


def run_in_workers(
    workers: PostWorkers,
    outputs: Iterator[tuple[int, int, Any]],
) -> Iterator[list[Any]]:
    """Per-item outputs, batch by batch, for forward outputs ``(start, count, output)``.

    Batch k is sent when batch k+1's forward has been launched, so that on CUDA its copy to the
    CPU has had that time to finish (``output`` may be a :class:`PendingCopy`)."""
    staged: tuple[int, int, Any] | None = None
    for entry in outputs:
        if staged is not None:
            workers.submit(*_ready(staged))
        staged = entry
        while workers.full:
            yield workers.take()
    if staged is not None:
        workers.submit(*_ready(staged))
    while len(workers):
        yield workers.take()


def _ready(entry: tuple[int, int, Any]) -> tuple[int, int, Any]:
    start, count, output = entry
    return (start, count, output.ready() if isinstance(output, PendingCopy) else output)
