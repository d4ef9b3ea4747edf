"""The apply context: mode, device and batching of the call in progress.

The context lives in a :class:`contextvars.ContextVar`, set by an apply method for the duration of
one call (or one stage call inside an executor), so two threads or two interleaved iterators never
see each other's mode.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch

if TYPE_CHECKING:
    from padlc.language.item_ranks import ItemRanks

Mode = Literal["infer", "eval", "train"]
MODES: tuple[Mode, ...] = ("infer", "eval", "train")


@dataclass(frozen=True, slots=True)
class ApplyContext:
    mode: Mode
    device: str = "cpu"
    #: whether the pipeline being applied has a ``batch`` marker (``unbatch`` only splits a batch then)
    batched: bool = True
    #: what the pipeline's batched runs saw of the forward's input, which ``batch`` checks its
    #: batch of one against in ``infer_apply`` (``None``: not checked; see ``item_ranks``)
    ranks: ItemRanks | None = field(default=None, compare=False, repr=False)


_CONTEXT: contextvars.ContextVar[ApplyContext | None] = contextvars.ContextVar(
    "padlc_apply_context", default=None
)


def current() -> ApplyContext | None:
    """The context of the apply call in progress in this thread/task, or ``None``."""
    return _CONTEXT.get()


def current_mode() -> Mode | None:
    context = _CONTEXT.get()
    return None if context is None else context.mode


@contextmanager
def applying(context: ApplyContext) -> Iterator[None]:
    token = _CONTEXT.set(context)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class InContext:
    """A picklable callable running ``fn`` inside an apply context (for executor stages).

    Used for the stage callables handed to the executor, so the mode is set in worker processes
    too, and only while the stage runs. ``grad`` (``None``: leave as is) switches gradients for the
    forward; the per-item stages run on data that needs no gradient switch, which matters because
    they run once per item.
    """

    __slots__ = ("context", "fn", "grad")

    def __init__(
        self, fn: Callable[[Any], Any], context: ApplyContext, grad: bool | None = None
    ) -> None:
        self.fn = fn
        self.context = context
        self.grad = grad

    def __call__(self, value: Any) -> Any:
        token = _CONTEXT.set(self.context)
        try:
            if self.grad is None:
                return self.fn(value)
            with torch.set_grad_enabled(self.grad):
                return self.fn(value)
        finally:
            _CONTEXT.reset(token)

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.fn, self.context, self.grad)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.fn, self.context, self.grad = state
