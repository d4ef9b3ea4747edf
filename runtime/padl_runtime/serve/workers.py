"""The server's preprocess and postprocess worker processes (``--workers N``).

Each worker imports the artifact's generated stage module (not the forward) and runs whole lists
of items through the preprocess or the postprocess, one :class:`~padl_runtime.ItemError` per
failing item. Workers are started with ``spawn`` (the server has threads by then, and a forked
torch thread pool can hang), take tasks from their pipe through a reader thread of their own (so
the server never blocks on a busy worker's full pipe), and exit when the server closes their pipe
or when the server process itself is gone (they watch its sentinel): none outlives the server.

Tensors travel by value (:mod:`padl_runtime._transport`): items are kilobytes, for which a copy is
cheaper than shared memory. A worker that dies (out of memory, a crash in native code) fails the
tasks it held and is replaced.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import queue
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

import torch

from padl_runtime._transport import dumps, loads
from padl_runtime.failures import ItemError, apply_each

__all__ = ["StageWorkers"]

Done = Callable[[list[Any]], None]
"""Called with a task's results (one per value: output or ItemError), in the reader thread."""

_STOP = b""
_READY = b"ready"
_log = logging.getLogger("padl_runtime.serve")


def _read(inbox: Connection, parent: Any, pending: queue.SimpleQueue[bytes | None]) -> None:
    watched = [inbox] if parent is None else [inbox, parent.sentinel]
    try:
        while True:
            if inbox not in wait(watched):  # the server exited
                break
            data = inbox.recv_bytes()
            if data == _STOP:
                break
            pending.put(data)
    except (EOFError, OSError):  # the server closed the pipe
        pass
    pending.put(None)


def _serve(inbox: Connection, outbox: Connection, functions: dict[str, Any]) -> None:
    """A worker's main loop: ``(task, stage, values)`` in, ``(task, results)`` out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C and SIGTERM are the server's to handle
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    torch.set_num_threads(1)  # one item at a time: a thread pool per worker only competes
    loaded = {stage: getattr(f, "fn", f) for stage, f in functions.items()}  # imports the artifact
    pending: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    reader = threading.Thread(
        target=_read,
        args=(inbox, multiprocessing.parent_process(), pending),
        name="padl-serve-worker-reader",
        daemon=True,
    )
    reader.start()
    try:
        outbox.send_bytes(_READY)
        while (data := pending.get()) is not None:
            task, stage, values = loads(data)
            results = apply_each(loaded[stage], values, stage, return_exceptions=True)
            try:
                message = dumps((task, results))
            except Exception as exc:  # an output that cannot be pickled
                failure = ItemError.from_exception(exc, 0, stage)
                message = dumps((task, [failure.at(i) for i in range(len(values))]))
            outbox.send_bytes(message)
    except (BrokenPipeError, EOFError, OSError):  # the server went away
        pass


class _Worker:
    def __init__(self, context: Any, functions: dict[str, Any], index: int) -> None:
        worker_in, self.to_worker = context.Pipe(duplex=False)
        self.from_worker, worker_out = context.Pipe(duplex=False)
        self.process = context.Process(
            target=_serve,
            args=(worker_in, worker_out, functions),
            name=f"padl-serve-worker-{index}",
            daemon=True,
        )
        self.process.start()
        worker_in.close()
        worker_out.close()
        self.tasks: dict[int, tuple[str, int, Done]] = {}  # task -> (stage, values, done)
        self.lock = threading.Lock()
        self.ready = threading.Event()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.to_worker.send_bytes(_STOP)
        self.to_worker.close()
        self.from_worker.close()
        self.process.join(5)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)


class StageWorkers:
    """``count`` worker processes running ``functions`` (``{"preprocess": f, "postprocess": g}``,
    generated stage functions that pickle by reference to their artifact).

    :meth:`submit` sends a list of values to the least busy worker and returns at once; ``done``
    is called with the results in a reader thread. :meth:`wait_ready` waits until every worker
    has imported the artifact. :meth:`close` stops them all.
    """

    def __init__(self, functions: dict[str, Any], count: int) -> None:
        if count < 1:
            raise ValueError(f"StageWorkers needs at least one worker, got {count}.")
        self._context: Any = multiprocessing.get_context("spawn")
        self._functions = functions
        self._numbers = itertools.count()
        self._tasks = itertools.count()
        self._closed = False
        self._broken = False  # a worker died before it had loaded the artifact
        self._workers = [self._start() for _ in range(count)]
        self._wake_r, self._wake_w = self._context.Pipe(duplex=False)
        self._reader = threading.Thread(
            target=self._collect, name="padl-serve-results", daemon=True
        )
        self._reader.start()

    def _start(self) -> _Worker:
        return _Worker(self._context, self._functions, next(self._numbers))

    def wait_ready(self, timeout: float) -> bool:
        """Whether every worker has imported the artifact within ``timeout`` seconds (False at
        once when one exits before it has)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            workers = list(self._workers)
            if self._broken or any(not w.process.is_alive() for w in workers):
                return False
            if all(w.ready.is_set() for w in workers):
                return True
            time.sleep(0.05)
        return False

    def submit(self, stage: str, values: list[Any], done: Done) -> None:
        """Run ``stage`` on ``values`` in a worker; ``done(results)`` when it is finished."""
        if self._closed:
            raise RuntimeError("The worker processes are closed.")
        task = next(self._tasks)
        worker = min(self._workers, key=lambda w: len(w.tasks))
        data = dumps((task, stage, values))
        with worker.lock:
            worker.tasks[task] = (stage, len(values), done)
            # OSError: the worker died just now; the reader fails the task and replaces it
            with contextlib.suppress(OSError):
                worker.to_worker.send_bytes(data)

    def _collect(self) -> None:
        """The reader thread: results from every worker; a dead worker's tasks fail."""
        while not self._closed:
            workers = list(self._workers)
            watched: dict[Any, _Worker] = {}
            for worker in workers:
                watched[worker.from_worker] = worker
                watched[worker.process.sentinel] = worker
            try:
                ready = wait([*watched, self._wake_r])
            except OSError:
                if self._closed:
                    return
                raise
            if self._wake_r in ready:
                return
            for handle in ready:
                worker = watched[handle]
                if handle is worker.from_worker:
                    self._receive(worker)
            for handle in ready:
                worker = watched[handle]
                if handle is worker.process.sentinel and worker in self._workers:
                    self._replace(worker)

    def _receive(self, worker: _Worker) -> None:
        try:
            data = worker.from_worker.recv_bytes()
        except (EOFError, OSError):
            return  # the sentinel says why
        if data == _READY:
            worker.ready.set()
            return
        task, results = loads(data)
        with worker.lock:
            entry = worker.tasks.pop(task, None)
        if entry is not None:
            entry[2](results)

    def _replace(self, worker: _Worker) -> None:
        if self._closed:
            return
        worker.process.join(5)  # its sentinel is ready: it is exiting, reap it for the code
        code = worker.process.exitcode
        if not worker.ready.is_set():  # it died loading the artifact: another would too
            _log.error("A stage worker process exited (code %s) while loading the artifact.", code)
            self._broken = True
            self._workers = [w for w in self._workers if w is not worker]
            worker.close()
            return
        _log.error("A stage worker process exited (code %s); starting another.", code)
        with worker.lock:
            tasks, worker.tasks = worker.tasks, {}
        for stage, count, done in tasks.values():
            failure = ItemError(
                0,
                stage,
                "WorkerExited",
                f"the {stage} worker process exited (code {code}) while running this item: it "
                "may have run out of memory or crashed in native code",
            )
            done([failure.at(i) for i in range(count)])
        self._workers = [w for w in self._workers if w is not worker]
        worker.close()
        self._workers.append(self._start())

    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    def close(self) -> None:
        """Stop every worker (waiting briefly for each, then terminating it). Idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._wake_w.send_bytes(b"x")
        self._reader.join(5)
        for worker in self._workers:
            worker.close()
        self._workers = []
        self._wake_r.close()
        self._wake_w.close()
