"""The three ways to apply a pipeline: one item (``infer_apply``), many for evaluation or training.

``eval_apply``/``train_apply`` hand the three stages to the executor in :mod:`padl_runtime.executor`
(preprocessing and batching in worker processes, forward in the main process, postprocessing off
the forward's critical path), wrapped so that each stage call runs in its own apply context.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from multiprocessing.context import BaseContext
from types import TracebackType
from typing import Any, Protocol

import torch

from padl_runtime.collate import move_to_device
from padl_runtime.executor import RunHooks, RunStats, run_batches
from padlc.language import context as _context
from padlc.language.base import DEFAULT_BATCH_SIZE, Transform
from padlc.language.combinators import Compose
from padlc.language.context import ApplyContext, InContext, Mode
from padlc.language.item_ranks import ItemRanks
from padlc.language.layer_modes import Held, enter, layer_modes
from padlc.language.markers import Batchify, Identity
from padlc.language.sites import FailureMark, place
from padlc.language.stages import without_markers

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "Outputs",
    "annotate",
    "batched_apply",
    "infer_apply",
    "layer_modes",
]


def _path_to(root: Transform, target: Transform) -> list[int] | None:
    if root is target:
        return []
    for i, child in enumerate(root._pd_children()):
        sub = _path_to(child, target)
        if sub is not None:
            return [i, *sub]
    return None


def annotate(exc: BaseException, pipeline: Transform, where: str | None = None) -> None:
    """Add a note naming the transform that raised (and the item) to an exception, once."""
    if getattr(exc, "_padlc_noted", False):
        return
    mark = getattr(exc, "_padlc_transform", None)
    parts = []
    if isinstance(mark, FailureMark):
        # from a worker process the transform is a copy (or only its name): no position then
        path = _path_to(pipeline, mark.transform) if mark.transform is not None else None
        position = f" at position {'.'.join(map(str, path))}" if path else ""
        location = ""
        if mark.location is not None:
            location = f" (created at {place(*mark.location)})"
        parts.append(f"raised by transform `{mark.name}`{position}{location} in `{pipeline!r}`")
    else:
        parts.append(f"raised in `{pipeline!r}`")
    if where:
        parts.append(where)
    note = "padlc: " + ", ".join(parts)
    hint = _unbatched_hint(pipeline, mark)
    try:
        exc.add_note(note)  # type: ignore[attr-defined]
        if hint:
            exc.add_note(hint)  # type: ignore[attr-defined]
        exc._padlc_noted = True  # type: ignore[attr-defined]
    except AttributeError:  # Python 3.10 has no add_note; the chained cause carries the note
        pass


def _unbatched_hint(pipeline: Transform, mark: object) -> str:
    """For a failure in the forward of a pipeline with ``unbatch`` but no ``batch``: that its
    layers get single items without a batch axis, and where ``batch`` goes (a layer such as
    BatchNorm raises on them; PADL allowed the structure, so it is not refused)."""
    try:
        stages = pipeline._pd_stages()
    except Exception:  # an invalid structure raises its own StageError elsewhere
        return ""
    if stages.has_batch or not stages.has_unbatch:
        return ""
    failing = mark.transform if isinstance(mark, FailureMark) else None
    forward = set(map(id, stages.forward.pd_iter_transforms()))
    if failing is not None and id(failing) not in forward:
        return ""
    return (
        "padlc: the pipeline has `unbatch` but no `batch`, so its forward runs on one item at a "
        "time, without a batch axis. If a layer needs batches, put `batch` before it: "
        "`prepare >> batch >> model >> unbatch`."
    )


def item_ranks(pipeline: Transform) -> ItemRanks | None:
    """The pipeline's record of its forward's input ranks (one per pipeline object, made on first
    use), when it has one ``batch`` on a single path: its batch of one in ``infer_apply`` is then
    the forward's whole input, comparable with the batches of ``eval_apply``."""
    ranks = pipeline.__dict__.get("_pd_item_ranks")
    if ranks is None:
        pre = pipeline._pd_stages().preprocess
        last = pre._pd_transforms[-1] if isinstance(pre, Compose) else pre
        if not isinstance(last, Batchify):
            return None
        ranks = pipeline.__dict__["_pd_item_ranks"] = ItemRanks()
    return ranks  # type: ignore[no-any-return]


def infer_apply(pipeline: Transform, item: Any) -> Any:
    # The hot path for serving one item at a time: no context managers, no copies.
    stages = pipeline._pd_stages()
    context = pipeline.__dict__.get("_pd_infer_context")
    device = pipeline._pd_sync_device()
    if context is None or context.device != device:
        # One context object per pipeline and device (it is immutable), not one per call.
        context = ApplyContext("infer", device, stages.has_batch, item_ranks(pipeline))
        pipeline.__dict__["_pd_infer_context"] = context
    # Layers in eval mode for the call, safely while other threads apply (layer_modes).
    layers, _, gates = pipeline._pd_layer_cache()
    held = enter(layers, gates, False)
    token = _context._CONTEXT.set(context)
    try:
        with torch.no_grad():
            output = pipeline._pd_call(item)
    except Exception as exc:
        annotate(exc, pipeline)
        raise
    finally:
        _context._CONTEXT.reset(token)
        held.release()
    if stages.has_batch and not stages.has_unbatch and device != "cpu":
        # No `unbatch`: the forward's output is returned as it is (a batch of one, a loss, a
        # dict), as PADL did; on the CPU, as every apply method returns its outputs.
        output = move_to_device(output, "cpu")
    return output


class Outputs(Protocol):
    """What ``eval_apply`` and ``train_apply`` return: the outputs, lazily, in input order.

    ``len()`` is the number of outputs (``TypeError`` for inputs without a length); ``stats``
    says where the run's time went so far; ``close()`` (or leaving a ``with`` block) stops the run
    and its worker processes."""

    @property
    def stats(self) -> RunStats: ...

    def __iter__(self) -> Iterator[Any]: ...

    def __next__(self) -> Any: ...

    def __len__(self) -> int: ...

    def close(self) -> None: ...

    def __enter__(self) -> Outputs: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> None: ...


class _PerItem:
    """The outputs of a pipeline without ``batch``: every item goes through alone (it is all
    forward), with the layers in the mode's train/eval state while iterating."""

    def __init__(
        self, pipeline: Transform, items: Iterable[Any], context: ApplyContext, training: bool
    ) -> None:
        self._pipeline = pipeline
        self._items = items
        self._context = context
        self._training = training
        self._stats = RunStats()
        self._outputs: Iterator[Any] | None = None

    @property
    def stats(self) -> RunStats:
        """Each item is its own batch; all of the time is the forward's."""
        return self._stats

    def __len__(self) -> int:
        if not hasattr(self._items, "__len__"):
            raise TypeError("len() is unknown: the inputs are an iterator without a length.")
        return len(self._items)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        if self._outputs is None:
            self._outputs = self._run()
        return self._outputs

    def __next__(self) -> Any:
        return next(iter(self))

    def close(self) -> None:
        if self._outputs is not None:
            self._outputs.close()  # type: ignore[attr-defined]

    def __enter__(self) -> _PerItem:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> None:
        self.close()

    def _run(self) -> Iterator[Any]:
        grad = self._context.mode == "train"
        stats, clock = self._stats, time.perf_counter
        with layer_modes(self._pipeline._pd_layer_list(), self._training):
            for index, item in enumerate(self._items):
                started = clock()
                with _context.applying(self._context), torch.set_grad_enabled(grad):
                    try:
                        output = self._pipeline._pd_call(item)
                    except Exception as exc:
                        annotate(exc, self._pipeline, f"item {index}")
                        raise
                spent = clock() - started
                stats.forward_seconds += spent
                stats.add_outputs(spent, [output])
                yield output


class _Hooks:
    """Layer modes for the duration of a batched run, and the note naming a failing transform."""

    def __init__(
        self, pipeline: Transform, training: bool, stages: dict[str, Transform | None]
    ) -> None:
        self.pipeline = pipeline
        self.training = training
        self.held: Held | None = None
        # A stage that is a single step runs as that step's plain callable, so nothing marks the
        # exception with the step; the executor records the stage, which names it.
        self.leaves = {
            name: t for name, t in stages.items() if t is not None and not t._pd_children()
        }

    def start(self) -> None:
        layers, _, gates = self.pipeline._pd_layer_cache()
        self.held = enter(layers, gates, self.training)

    def error(self, exc: BaseException) -> None:
        if getattr(exc, "_padlc_transform", None) is None:
            leaf = self.leaves.get(getattr(exc, "padl_stage", ""))
            if leaf is not None:
                with contextlib.suppress(AttributeError):
                    exc._padlc_transform = FailureMark(leaf)  # type: ignore[attr-defined]
        annotate(exc, self.pipeline)

    def end(self) -> None:
        held, self.held = self.held, None
        if held is not None:
            held.release()


def _item_stage(t: Transform, context: ApplyContext) -> Any:
    """The per-item callable for the executor (``t`` without markers), with no context set when
    nothing in the stage depends on the mode (the common case, which runs once per item)."""
    if isinstance(t, Identity):
        return None
    if t._pd_needs_mode():
        return InContext(t._pd_call, context)
    return t._pd_callable()  # e.g. the user's function itself: one call less per item


def _check_options(
    batch_size: Any, num_workers: Any, post_workers: Any, loader_options: Any
) -> dict[str, Any]:
    """The apply options' types, checked before anything starts (a string from a config file, say:
    ``batch_size="32"``); the DataLoader options as a dict."""
    for name, value, least in (
        ("batch_size", batch_size, 1),
        ("num_workers", num_workers, 0),
        ("post_workers", post_workers, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            hint = ""
            if isinstance(value, str) and value.strip().isdigit():
                hint = f" Pass the number itself: {name}={int(value)}."
            raise TypeError(
                f"{name} must be an integer, got {value!r} (a {type(value).__name__}).{hint}"
            )
        if value < least:
            raise ValueError(f"{name} must be at least {least}, got {value}.")
    if loader_options is None:
        return {}
    if not isinstance(loader_options, Mapping):
        raise TypeError(
            "loader_options must be a mapping of torch DataLoader options, e.g. "
            f"loader_options={{'timeout': 60}}; got {type(loader_options).__name__} "
            f"{loader_options!r}."
        )
    return dict(loader_options)


def batched_apply(
    pipeline: Transform,
    items: Iterable[Any],
    mode: Mode,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_workers: int = 0,
    flatten: bool = False,
    use_post: bool = True,
    progress: bool = False,
    post_workers: int = 0,
    post_threads: int | None = None,
    pin_memory: bool | None = None,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    multiprocessing_context: str | BaseContext | None = None,
    loader_options: Mapping[str, Any] | None = None,
) -> Outputs:
    """Apply ``pipeline`` to many items in ``mode`` ("eval" or "train"); see
    :meth:`padlc.Transform.eval_apply` for the options.

    Returns an iterator with ``len()``: one output per item when the pipeline has a postprocess
    stage (and ``use_post``) or ``flatten=True``, else one output per batch. ``items`` may be any
    sized indexable (list, tuple, tensor, range, numpy array) or a plain iterable. Preprocessing and
    batching run in ``num_workers`` worker processes, postprocessing (eval only) in
    ``post_workers`` processes; ``loader_options`` go to the ``torch.utils.data.DataLoader`` of the
    workers (e.g. ``{"timeout": 60, "worker_init_fn": f}``).
    """

    options = _check_options(batch_size, num_workers, post_workers, loader_options)
    if mode == "train" and post_workers:
        raise ValueError(
            "post_workers is for eval_apply: train_apply's outputs carry gradients, which cannot "
            "cross to another process. Postprocess in this process (post_workers=0)."
        )
    if multiprocessing_context is not None:
        options["multiprocessing_context"] = multiprocessing_context
    if shuffle:
        items = _Shuffled(items, generator)  # type: ignore[assignment]  # sized and indexable
    stages = pipeline._pd_stages()
    device = pipeline._pd_sync_device()
    context = ApplyContext(mode, device, stages.has_batch)
    training = mode == "train"
    if not stages.has_batch:
        return _PerItem(pipeline, items, context, training)
    pre, post = without_markers(stages.preprocess), without_markers(stages.postprocess)
    hooks = _Hooks(
        pipeline, training, {"preprocess": pre, "forward": stages.forward, "postprocess": post}
    )
    forward: Callable[[Any], Any] = InContext(stages.forward._pd_call, context, training)
    ranks = item_ranks(pipeline)
    if ranks is not None and ranks.seen is None:
        forward = ranks.recording(forward)
    runner = run_batches(
        items,
        preprocess=_item_stage(pre, context),
        forward=forward,
        outputs_to_cpu=True,  # postprocessing (and the caller) get CPU values, as unbatch gives
        postprocess=_item_stage(post, context),
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        # `unbatch` alone is a postprocess stage (outputs per item) even though it is dropped above.
        flatten=flatten or (use_post and not isinstance(stages.postprocess, Identity)),
        use_post=use_post,
        progress=progress,
        post_workers=post_workers,
        post_threads=post_threads,
        pin_memory=pin_memory,
        drop_last=drop_last,
        hooks=RunHooks(hooks.start, hooks.error, hooks.end),
        **options,
    )
    return runner


class _Shuffled:
    """A random permutation of sized, indexable inputs (``shuffle=True``), drawn once per apply."""

    def __init__(self, items: Any, generator: torch.Generator | None) -> None:
        if not (hasattr(items, "__len__") and hasattr(items, "__getitem__")):
            raise TypeError(
                "shuffle=True needs inputs with a length and indexing (a list, tensor, dataset); "
                f"got a {type(items).__name__}. Shuffle them yourself or pass a list."
            )
        self._items = items
        self._order = torch.randperm(len(items), generator=generator).tolist()

    def __len__(self) -> int:
        return len(self._order)

    def __getitem__(self, index: int) -> Any:
        return self._items[self._order[index]]

    def _padl_input_index(self, position: int) -> int:
        """The index in the caller's input of the item at ``position`` (error notes use it)."""
        return self._order[position]
