"""The three ways to apply a pipeline: one item (``infer_apply``), many for evaluation or training.

``eval_apply``/``train_apply`` hand the three stages to the executor in :mod:`padl_runtime.executor`
(preprocessing and batching in worker processes, forward in the main process, postprocessing off
the forward's critical path), wrapped so that each stage call runs in its own apply context.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from padl_runtime.collate import move_to_device
from padl_runtime.executor import BatchIterator, RunHooks, run_batches
from padlc.language import context as _context
from padlc.language.base import FailureMark, Transform, place
from padlc.language.context import ApplyContext, InContext, Mode
from padlc.language.layer_modes import Held, enter, layer_modes
from padlc.language.markers import Identity
from padlc.language.stages import without_markers

__all__ = ["DEFAULT_BATCH_SIZE", "annotate", "batched_apply", "infer_apply", "layer_modes"]

#: ``eval_apply``/``train_apply`` batch size when none is given. PADL used the DataLoader's default
#: of 1, which made every pipeline run item by item on the device; 64 keeps small models busy while
#: bounding memory for large inputs. Pass ``batch_size=`` to tune it.
DEFAULT_BATCH_SIZE = 64


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
    try:
        exc.add_note(note)  # type: ignore[attr-defined]
        exc._padlc_noted = True  # type: ignore[attr-defined]
    except AttributeError:  # Python 3.10 has no add_note; the chained cause carries the note
        pass


def infer_apply(pipeline: Transform, item: Any) -> Any:
    # The hot path for serving one item at a time: no context managers, no copies.
    stages = pipeline._pd_stages()
    context = pipeline.__dict__.get("_pd_infer_context")
    device = pipeline._pd_sync_device()
    if context is None or context.device != device:
        # One context object per pipeline and device (it is immutable), not one per call.
        context = ApplyContext("infer", device, stages.has_batch)
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


class _PerItem:
    """Iterator with ``len`` for pipelines without ``batch``: every item goes through alone."""

    def __init__(self, pipeline: Transform, items: Iterable[Any], context: ApplyContext) -> None:
        self._pipeline = pipeline
        self._items = items
        self._context = context

    def __len__(self) -> int:
        if not hasattr(self._items, "__len__"):
            raise TypeError("len() is unknown: the inputs are an iterator without a length.")
        return len(self._items)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        grad = self._context.mode == "train"
        for index, item in enumerate(self._items):
            with _context.applying(self._context), torch.set_grad_enabled(grad):
                try:
                    output = self._pipeline._pd_call(item)
                except Exception as exc:
                    annotate(exc, self._pipeline, f"item {index}")
                    raise
            yield output


class _Applied:
    """The iterator of a pipeline without ``batch``: sets layer modes while iterating."""

    def __init__(self, inner: _PerItem, pipeline: Transform, training: bool) -> None:
        self._inner = inner
        self._pipeline = pipeline
        self._training = training

    def __len__(self) -> int:
        return len(self._inner)

    def __iter__(self) -> Iterator[Any]:
        with layer_modes(self._pipeline._pd_layer_list(), self._training):
            yield from self._inner


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
    **loader_kwargs: Any,
) -> BatchIterator | _Applied:
    """Apply ``pipeline`` to many items in ``mode`` ("eval" or "train").

    Returns an iterator with ``len()``: one output per item when the pipeline has a postprocess
    stage (and ``use_post``) or ``flatten=True``, else one output per batch. ``items`` may be any
    sized indexable (list, tuple, tensor, range, numpy array) or a plain iterable. Preprocessing and
    batching run in ``num_workers`` worker processes, postprocessing (eval only) in
    ``post_workers`` processes; ``post_threads`` and other executor options go to
    :func:`padl_runtime.executor.run_batches`, the rest to the ``torch.utils.data.DataLoader``
    (e.g. ``worker_init_fn``).
    """

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    if mode == "train" and loader_kwargs.get("post_workers"):
        raise ValueError(
            "post_workers is for eval_apply: train_apply's outputs carry gradients, which cannot "
            "cross to another process. Postprocess in this process (post_workers=0)."
        )
    if loader_kwargs.pop("shuffle", False):
        items = _Shuffled(items, loader_kwargs.pop("generator", None))  # type: ignore[assignment]
    stages = pipeline._pd_stages()
    device = pipeline._pd_sync_device()
    context = ApplyContext(mode, device, stages.has_batch)
    training = mode == "train"
    if not stages.has_batch:
        return _Applied(_PerItem(pipeline, items, context), pipeline, training)
    pre, post = without_markers(stages.preprocess), without_markers(stages.postprocess)
    hooks = _Hooks(
        pipeline, training, {"preprocess": pre, "forward": stages.forward, "postprocess": post}
    )
    runner = run_batches(
        items,
        preprocess=_item_stage(pre, context),
        forward=InContext(stages.forward._pd_call, context, training),
        outputs_to_cpu=True,  # postprocessing (and the caller) get CPU values, as unbatch gives
        postprocess=_item_stage(post, context),
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        # `unbatch` alone is a postprocess stage (outputs per item) even though it is dropped above.
        flatten=flatten or (use_post and not isinstance(stages.postprocess, Identity)),
        use_post=use_post,
        progress=progress,
        hooks=RunHooks(hooks.start, hooks.error, hooks.end),
        **loader_kwargs,
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
