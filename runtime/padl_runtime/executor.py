"""The batched executor behind every ``eval_apply`` / ``train_apply``: preprocess → forward → postprocess.

:func:`run_batches` streams items through three stages:

* **preprocess + collate**, per batch, inline or whole batches at a time in DataLoader workers;
* **forward**, per collated batch, in the main process, on ``device`` (on CUDA the next batch is
  copied on a side stream while the current one runs);
* **postprocess**, per item after splitting the forward's output, inline, in a background thread
  or, with ``post_workers``, whole batches at a time in worker processes.

Outputs come out in input order and are streamed: nothing is accumulated, so memory stays flat
however many items go through. Failures keep their exception type and gain a note naming the
item or batch ("while preprocessing item 7"). Closing the iterator, an exception or a
``KeyboardInterrupt`` shuts down every worker process and thread it started.
"""

from __future__ import annotations

import functools
import itertools
import multiprocessing
import os
import time
import warnings
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.reduction import ForkingPickler
from types import TracebackType
from typing import Any

import torch
from torch.utils.data import DataLoader

from padl_runtime._batch_source import (
    Batch,
    ChunkDataset,
    ChunkStream,
    WorkerFailure,
    add_note,
    batch_label,
    inline_batches,
    is_indexable,
    item_label,
)
from padl_runtime._cuda import PendingCopy, cuda_prefetch
from padl_runtime._loader_options import check_loader_options
from padl_runtime._orphans import DieWithParent
from padl_runtime._post_workers import PostWorkers, run_in_workers
from padl_runtime._stats import RunStats, timed
from padl_runtime.collate import move_to_device, uncollate

__all__ = ["BatchIterator", "RunHooks", "RunStats", "run_batches"]


@dataclass(frozen=True)
class _Plan:
    """Everything one run needs; holds no reference to the :class:`BatchIterator` (see there)."""

    items: Any
    preprocess: Callable[[Any], Any] | None
    forward: Callable[[Any], Any]
    post: _Post
    per_item: bool
    batch_size: int
    num_workers: int
    device: torch.device
    pin_memory: bool
    post_threads: int
    progress: bool
    loader_kwargs: dict[str, Any]
    hooks: RunHooks | None = None
    outputs_to_cpu: bool = False
    post_workers: int = 0
    drop_last: bool = False
    stats: RunStats = field(default_factory=RunStats)


@dataclass(frozen=True)
class _Post:
    """The post stage's functions (apart from the plan: with ``post_workers`` under spawn this is
    what is pickled to the worker processes, and it must not drag the input items along)."""

    postprocess: Callable[[Any], Any] | None = None
    postprocess_batch: Callable[[Any], list[Any]] | None = None

    def __bool__(self) -> bool:
        return self.postprocess is not None or self.postprocess_batch is not None


@dataclass(frozen=True)
class RunHooks:
    """Callbacks around one run, for callers that manage state for its duration (padlc puts layers
    in train/eval mode and names the failing transform): ``start`` before the first batch,
    ``error`` with any exception before it propagates, ``end`` when the run stops for any reason."""

    start: Callable[[], None]
    error: Callable[[BaseException], None]
    end: Callable[[], None]


class BatchIterator(Iterator[Any]):
    """The outputs of :func:`run_batches`, produced lazily, in input order.

    ``len()`` is the number of outputs (items, or batches when outputs are per batch) and raises
    ``TypeError`` for an input without a length. Nothing starts before the first ``next()``.
    ``close()`` (or leaving a ``with`` block, or dropping the last reference) stops the run and
    shuts down its worker processes and threads. ``stats`` says where the run's time went.
    """

    def __init__(self, plan: _Plan) -> None:
        self._plan = plan
        self._runner: Generator[list[Any], None, None] | None = None
        self._outputs: Iterator[Any] | None = None
        self._length = _output_count(plan)

    @property
    def stats(self) -> RunStats:
        """Where the main thread's time went so far (see :class:`RunStats`)."""
        return self._plan.stats

    def __len__(self) -> int:
        if self._length is None:
            raise TypeError(
                f"len() is unknown: the input ({type(self._plan.items).__name__}) has no length. "
                "Pass a list, tuple, range, tensor or array to know it, or count the outputs."
            )
        return self._length

    def __iter__(self) -> Iterator[Any]:
        # The generator itself: `for`/`list()` then step it directly, without a Python-level
        # __next__ call per output.
        return self.outputs()

    def __next__(self) -> Any:
        return next(self.outputs())

    def outputs(self) -> Iterator[Any]:
        """The outputs one by one (the run starts on first use).

        The run is a generator of per-batch lists, chained in C: no Python frame resumes per
        output. It is a generator over the plan, not over ``self``: no reference cycle, so
        dropping the last reference to this iterator closes it at once and its ``finally`` shuts
        the workers down (no waiting for the cyclic garbage collector).
        """
        if self._outputs is None:
            self._runner = _run(self._plan)
            self._outputs = itertools.chain.from_iterable(self._runner)
        return self._outputs

    def close(self) -> None:
        """Stop the run: shut down worker processes and threads. Safe to call more than once."""
        if self._runner is not None:
            self._runner.close()

    def __enter__(self) -> BatchIterator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _output_count(plan: _Plan) -> int | None:
    if isinstance(plan.items, torch.Tensor):
        items = len(plan.items) if plan.items.dim() else None
    else:
        items = len(plan.items) if hasattr(type(plan.items), "__len__") else None
    if items is not None and plan.drop_last:
        items -= items % plan.batch_size
    if items is None or plan.per_item:
        return items
    return -(-items // plan.batch_size)


def run_batches(
    items: Any,
    *,
    preprocess: Callable[[Any], Any] | None,
    forward: Callable[[Any], Any],
    postprocess: Callable[[Any], Any] | None,
    batch_size: int = 64,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    flatten: bool = False,
    use_post: bool = True,
    progress: bool = False,
    pin_memory: bool | None = None,
    postprocess_batch: Callable[[Any], list[Any]] | None = None,
    post_threads: int | None = None,
    post_workers: int = 0,
    hooks: RunHooks | None = None,
    outputs_to_cpu: bool = False,
    drop_last: bool = False,
    **loader_kwargs: Any,
) -> BatchIterator:
    """Run ``items`` through preprocess → collate → forward → uncollate → postprocess, in batches.

    ``items`` is anything indexable with a length (list, tuple, range, tensor, numpy array) or any
    iterable (a generator is read lazily, one batch at a time). Outputs are one per item when
    ``use_post`` and a post stage is given, or when ``flatten``; otherwise one per batch (the
    forward's output as is). They come in input order.

    Options: ``num_workers`` > 0 preprocesses and collates whole batches in DataLoader worker
    processes (``loader_kwargs`` such as ``worker_init_fn``, ``prefetch_factor`` or
    ``multiprocessing_context`` go to the DataLoader; without workers no DataLoader is used and
    they are ignored). ``pin_memory`` defaults to "device is
    CUDA". ``postprocess_batch`` maps a whole forward output to a list of per-item outputs
    (instead of ``postprocess``). ``post_threads`` is the number of background threads for the
    post stage; the default is 1 on CUDA and 0 (inline) elsewhere. ``post_workers`` > 0 runs the
    post stage in that many worker processes instead, whole batches at a time: the main process
    then only receives batches, launches the forward and collects the results, which is what makes
    a GPU pipeline with a per-item Python postprocess faster than one process can be. The post
    functions then run in another process: their side effects on this process's state are lost,
    and their outputs must be picklable. ``progress`` shows a tqdm bar
    when tqdm is installed. ``outputs_to_cpu`` copies each forward output back to the CPU; on CUDA
    the copy is asynchronous (into pinned memory) and the post stage waits for it, so the main
    thread goes on to the next batch instead of waiting for the GPU. ``drop_last`` leaves out the
    last batch when it holds fewer than ``batch_size`` items (training with BatchNorm, say).

    >>> import torch
    >>> outputs = run_batches(
    ...     range(5),
    ...     preprocess=lambda i: torch.tensor([float(i)]),
    ...     forward=lambda batch: batch * 2,
    ...     postprocess=lambda out: int(out.item()),
    ...     batch_size=2,
    ... )
    >>> len(outputs), list(outputs)
    (5, [0, 2, 4, 6, 8])
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be a non-negative integer, got {num_workers!r}.")
    if postprocess is not None and postprocess_batch is not None:
        raise TypeError("Pass either postprocess (per item) or postprocess_batch, not both.")
    check_loader_options(loader_kwargs, run_batches)
    if loader_kwargs.get("shuffle"):
        raise ValueError("shuffle=True is not supported: outputs always come in input order.")
    device = torch.device(device)
    is_cuda = device.type == "cuda"
    if post_threads is None:
        post_threads = 1 if is_cuda else 0  # why: see _post_stage
    if post_threads < 0:
        raise ValueError(f"post_threads must be >= 0, got {post_threads!r}.")
    if isinstance(post_workers, bool) or not isinstance(post_workers, int) or post_workers < 0:
        raise ValueError(f"post_workers must be a non-negative integer, got {post_workers!r}.")
    use_post = use_post and (postprocess is not None or postprocess_batch is not None)
    if progress:
        _check_progress()
    plan = _Plan(
        items=items,
        preprocess=preprocess,
        forward=forward,
        post=_Post(postprocess, postprocess_batch) if use_post else _Post(),
        per_item=use_post or flatten,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        # Pinning only pays for an asynchronous copy to a CUDA device, and without CUDA
        # DataLoader warns about it; so it is skipped when CUDA is missing.
        pin_memory=(is_cuda if pin_memory is None else pin_memory) and torch.cuda.is_available(),
        post_threads=post_threads,
        progress=progress,
        loader_kwargs=loader_kwargs,
        hooks=hooks,
        outputs_to_cpu=outputs_to_cpu and device.type != "cpu",
        post_workers=post_workers,
        drop_last=bool(drop_last),
    )
    return BatchIterator(plan)


# --- stage 1: batches on the host ---------------------------------------------------------------


def _start_method(context: Any) -> str:
    if isinstance(context, str):
        return context
    if context is not None:
        return str(context.get_start_method())
    # Not get_start_method(): without allow_none it fixes the default for the whole process.
    # The first of get_all_start_methods() is the platform default.
    return (
        multiprocessing.get_start_method(allow_none=True)
        or multiprocessing.get_all_start_methods()[0]
    )


def _check_picklable(plan: _Plan, what: str, value: Any, workers: str, option: str) -> None:
    """Under spawn/forkserver, worker processes receive their functions (and the DataLoader's
    workers the input) by pickling."""
    method = _start_method(plan.loader_kwargs.get("multiprocessing_context"))
    if method == "fork":
        return
    try:
        ForkingPickler.dumps(value)  # what the worker processes' queues will do
    except Exception as exc:
        fix = (
            "pass a list instead of a generator"
            if what == "input"
            else "define it at module level (no lambda or closure)"
        )
        raise TypeError(
            f"The {what} ({type(value).__name__}) cannot be sent to {workers} worker processes "
            f"started with {method!r}: {exc}. To fix it, {fix}, or use {option}=0 or "
            "multiprocessing_context='fork'."
        ) from exc


def _loader_batches(loader_iter: Iterator[Any]) -> Iterator[Batch]:
    for entry in loader_iter:
        if isinstance(entry, WorkerFailure):
            raise entry.rebuild()
        start, count, batch = entry
        yield start, count, batch


def _shutdown_loader(loader_iter: Iterator[Any] | None) -> None:
    # The DataLoader iterator only stops its workers in __del__, which an exception traceback
    # can postpone indefinitely; its _shutdown_workers is idempotent and has been there since
    # torch 1.0. (Private API: if it ever goes, __del__ still does the job, only later.)
    shutdown = getattr(loader_iter, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


# --- stage 2: batches on the device -------------------------------------------------------------


def _on_device(batches: Iterator[Batch], plan: _Plan) -> Iterator[Batch]:
    device = plan.device
    if device.type == "cpu":
        return batches  # tensors are built on the CPU: nothing to do, nothing to pay
    if device.type == "cuda" and torch.cuda.is_available():
        return cuda_prefetch(batches, device, pin_here=plan.pin_memory and plan.num_workers == 0)
    return ((start, count, move_to_device(batch, device)) for start, count, batch in batches)


# --- stage 3: forward and post ------------------------------------------------------------------


def _call_forward(plan: _Plan, start: int, count: int, batch: Any) -> Any:
    started = time.perf_counter()
    try:
        return plan.forward(batch)
    except Exception as exc:
        add_note(exc, f"in the forward of {batch_label(plan.items, start, count)}", "forward")
        raise
    finally:
        plan.stats.forward_seconds += time.perf_counter() - started


def _forward(plan: _Plan, start: int, count: int, batch: Any) -> Any:
    """The forward output of one batch, on the CPU when ``outputs_to_cpu`` (a blocking copy)."""
    output = _call_forward(plan, start, count, batch)
    return move_to_device(output, "cpu") if plan.outputs_to_cpu else output


def _forward_async(plan: _Plan, start: int, count: int, batch: Any) -> Any:
    """The forward for a background post stage: on CUDA with ``outputs_to_cpu`` the copy back is
    left in flight (a :class:`PendingCopy` the post stage waits for); otherwise :func:`_forward`."""
    if plan.outputs_to_cpu and plan.device.type == "cuda":
        return PendingCopy(_call_forward(plan, start, count, batch), plan.device)
    return _forward(plan, start, count, batch)


def _post_items(post: _Post, start: int, count: int, output: Any, items: Any = None) -> list[Any]:
    """Per-item outputs of one batch: split the forward output, then postprocess each item.
    ``items`` (the run's input, for naming items in error notes) stays in this process."""
    if isinstance(output, PendingCopy):
        output = output.wait()
    where = batch_label(items, start, count)
    if post.postprocess_batch is not None:
        try:
            results = list(post.postprocess_batch(output))
        except Exception as exc:
            add_note(exc, f"while postprocessing {where}", "postprocess")
            raise
    else:
        try:
            results = uncollate(output)
        except Exception as exc:
            add_note(exc, f"while splitting the forward output of {where} into items")
            raise
        if post.postprocess is not None:
            done: list[Any] = []
            try:
                done.extend(map(post.postprocess, results))  # keeps the items done before a failure
            except Exception as exc:
                item = item_label(items, start + len(done))
                add_note(exc, f"while postprocessing item {item}", "postprocess")
                raise
            results = done
    if len(results) != count:
        raise ValueError(
            f"Expected {count} outputs for {where}, got {len(results)}: the forward (or "
            "postprocess_batch) must keep the batch axis, one row per item."
            + _one_item_hint(items, start)
        )
    return results


def _one_item_hint(items: Any, start: int) -> str:
    """When the items look like the values of one item (numbers, or characters of a string):
    that eval_apply iterates over what it is given, and what to pass instead."""
    try:
        first = items[start]
    except Exception:  # a generator, or no such index: nothing to say
        return ""
    scalar = isinstance(first, int | float | complex) or (
        isinstance(first, torch.Tensor) and first.dim() == 0
    )
    if not (scalar or (isinstance(first, str) and len(first) == 1)):
        return ""
    kind = "numbers" if scalar else "single characters"
    return (
        f" The items given are {kind}: eval_apply iterates over its argument, so ONE item "
        "(a list of numbers, a string) passed as `eval_apply(item)` is taken for that many "
        "items. Pass a list of items, `eval_apply([item])`, or use `infer_apply(item)`."
    )


def _post_stage(
    plan: _Plan, batches: Iterator[Batch], workers: PostWorkers | None
) -> Iterator[list[Any]]:
    """Per-item outputs, batch by batch; post of batch k overlaps the forward of batch k+1.

    The overlap needs a thread, and a thread only helps when the forward releases the GIL for
    long. On CUDA it does: the main thread launches the forward and an asynchronous copy of its
    output to the CPU, and the post thread waits for that copy (GIL released) while the main
    thread fetches and launches the next batch. On a 2-core CPU (benchmarks/executor_cpu.py, a
    tiny MLP with an ``.item()`` post) a background thread made runs 3-10% slower than doing the
    post inline, with and without workers: the post is GIL-bound Python and the CPU forward is
    short, so the thread only adds hand-off and contention. Hence post_threads defaults to 0 on
    CPU and 1 on CUDA. The queue is bounded (post_threads batches in flight) so memory stays flat.
    """
    if workers is not None:
        outputs = ((s, c, _forward_async(plan, s, c, b)) for s, c, b in batches)
        yield from run_in_workers(workers, outputs)
        return
    if plan.post_threads == 0:
        for start, count, batch in batches:
            output = _forward(plan, start, count, batch)
            yield _post_items(plan.post, start, count, output, plan.items)
        return
    pool = ThreadPoolExecutor(plan.post_threads, thread_name_prefix="padl-post")
    pending: deque[Future[list[Any]]] = deque()
    try:
        for start, count, batch in batches:
            output = _forward_async(plan, start, count, batch)
            pending.append(pool.submit(_post_items, plan.post, start, count, output, plan.items))
            del output, batch  # the thread holds what it needs; don't pin it here too
            if len(pending) > plan.post_threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        # Waits only for the batch being postprocessed (if any), then the threads exit.
        pool.shutdown(wait=True, cancel_futures=True)


def _whole_outputs(plan: _Plan, batches: Iterator[Batch]) -> Iterator[list[Any]]:
    """``[forward output]`` per batch (outputs per batch, no post stage)."""
    for start, count, batch in batches:
        output = _forward(plan, start, count, batch)
        del batch  # not kept alive while the caller holds the output
        yield [output]


def _progress_bar(plan: _Plan, total: int | None) -> Any:
    try:
        from tqdm.auto import tqdm  # optional: the runtime needs only torch
    except ImportError:  # said when the run was asked for (_check_progress)
        return None
    return tqdm(total=total, unit="item" if plan.per_item else "batch", dynamic_ncols=True)


def _check_progress() -> None:
    """``progress=True`` without tqdm: a warning saying how to get the bar (the run goes on)."""
    try:
        import tqdm.auto  # noqa: F401
    except ImportError:
        warnings.warn(
            "progress=True shows a tqdm progress bar, but tqdm is not installed here: "
            "pip install tqdm (or padl-runtime[progress]). Running without one.",
            RuntimeWarning,
            stacklevel=3,
        )


def _run(plan: _Plan) -> Generator[list[Any], None, None]:
    """The outputs, a list per batch (one output per item, or ``[forward output]`` per batch)."""
    loader_iter: Iterator[Any] | None = None
    post_workers: PostWorkers | None = None
    stages: list[Iterator[Any]] = []  # closed last-to-first on the way out
    bar = None
    hooks = plan.hooks
    if hooks is not None:
        hooks.start()
    try:
        starting = time.perf_counter()
        if plan.per_item and plan.post and plan.post_workers:
            # Before the DataLoader's workers and threads: the post workers are forked first.
            for function in (plan.post.postprocess, plan.post.postprocess_batch):
                if function is not None:
                    _check_picklable(plan, "postprocess", function, "post", "post_workers")
            split = functools.partial(_post_items, plan.post)
            method = _start_method(plan.loader_kwargs.get("multiprocessing_context"))
            post_workers = PostWorkers(split, plan.post_workers, method)
        if plan.num_workers == 0:
            host: Iterator[Batch] = inline_batches(
                plan.items, plan.preprocess, plan.batch_size, plan.drop_last
            )
        else:
            dataset: Any
            if is_indexable(plan.items):
                dataset = ChunkDataset(plan.items, plan.preprocess, plan.batch_size, plan.drop_last)
            else:
                dataset = ChunkStream(plan.items, plan.preprocess, plan.batch_size, plan.drop_last)
            _check_picklable(plan, "preprocess", plan.preprocess, "DataLoader", "num_workers")
            _check_picklable(plan, "input", plan.items, "DataLoader", "num_workers")
            loader_kwargs = dict(plan.loader_kwargs)
            # Workers end with this process, even killed while they are busy (_orphans).
            loader_kwargs["worker_init_fn"] = DieWithParent(
                loader_kwargs.get("worker_init_fn"), os.getpid()
            )
            loader = DataLoader(
                dataset,
                batch_size=None,  # one dataset item is already a whole batch
                collate_fn=_as_is,
                num_workers=plan.num_workers,
                pin_memory=plan.pin_memory,
                **loader_kwargs,
            )
            # Workers are started (forked) here, before any thread of ours exists.
            loader_iter = iter(loader)
            host = _loader_batches(loader_iter)
        if post_workers is not None or loader_iter is not None:
            plan.stats.start_seconds = time.perf_counter() - starting
        on_device = _on_device(host, plan)
        batches = timed(on_device, plan.stats.add_input)
        stages += [host, on_device, batches]
        if plan.progress:
            bar = _progress_bar(plan, _output_count(plan))
        if not plan.per_item:
            forwards = _whole_outputs(plan, batches)
            whole = timed(forwards, plan.stats.add_outputs)
            stages += [forwards, whole]
            for outputs in whole:
                yield outputs
                if bar is not None:
                    bar.update(1)
            return
        posts = _post_stage(plan, batches, post_workers)
        post = timed(posts, plan.stats.add_outputs)
        stages += [posts, post]
        for outputs in post:
            yield outputs
            if bar is not None:
                bar.update(len(outputs))
    except Exception as exc:
        if hooks is not None:
            hooks.error(exc)
        raise
    finally:
        # Explicitly, in order (threads, then device prefetch, then workers): on early exit the
        # inner generators are only suspended, and their own cleanup must not wait for the GC.
        for stage in reversed(stages):
            stage.close()  # type: ignore[attr-defined]
        if post_workers is not None:
            post_workers.close()
        _shutdown_loader(loader_iter)
        if bar is not None:
            bar.close()
        if hooks is not None:
            hooks.end()


def _as_is(batch: Any) -> Any:
    """The DataLoader's collate_fn: batches are collated in the dataset already."""
    return batch
