"""``identity`` and the stage markers ``batch`` and ``unbatch``."""

from __future__ import annotations

from typing import Any

from padl_runtime.collate import add_batch_axis, move_to_device, remove_batch_axis
from padlc.errors import ModeError
from padlc.language import context as _context
from padlc.language.base import CallableTransform, Transform

__all__ = ["Batchify", "Identity", "Unbatchify", "batch", "identity", "unbatch"]


class Identity(Transform):
    """Returns its input unchanged."""

    def _pd_call(self, value: Any) -> Any:
        return value

    def __call__(self, *args: Any) -> Any:
        return args[0] if len(args) == 1 else args

    def _pd_short_repr(self) -> str:
        return self._pd_name or "identity"

    def _pd_default_name(self) -> str | None:
        # PADL named `identity` by its variable: a branch `identity` gives the field `identity`.
        return "identity" if self is identity else None


class _Marker(CallableTransform):
    word = ""

    def _pd_needs_mode(self) -> bool:
        return True

    def _pd_context(self) -> _context.ApplyContext:
        context = _context.current()
        if context is None:
            raise ModeError(
                f"`{self.word}` runs only inside an apply method: use `.infer_apply(item)`, "
                "`.eval_apply(items)` or `.train_apply(items)` on the pipeline."
            )
        return context

    def _pd_short_repr(self) -> str:
        return self._pd_name or self.word


class Batchify(_Marker):
    """``batch``: the end of preprocessing. In ``infer_apply`` it makes a batch of one item and moves
    it to the device; in ``eval_apply``/``train_apply`` the executor batches, so it passes through."""

    word = "batch"

    def __init__(self, dim: int = 0) -> None:
        if dim != 0:
            raise ValueError(
                f"Batchify(dim={dim!r}): padlc batches along axis 0 (the executor stacks items "
                "there). Move the axis in the forward instead, e.g. `batch >> same.movedim(0, 1)`."
            )

    def _pd_call(self, value: Any) -> Any:
        context = self._pd_context()
        if context.mode != "infer":
            return value
        batched = add_batch_axis(value)
        if context.ranks is not None:
            context.ranks.check(batched)
        if context.device != "cpu":
            batched = move_to_device(batched, context.device)
        return batched


class Unbatchify(_Marker):
    """``unbatch``: the start of postprocessing. Moves the output to the CPU; in ``infer_apply`` it
    also removes the batch axis (the executor splits batches in the other modes)."""

    word = "unbatch"

    def __init__(self, dim: int = 0, cpu: bool = True) -> None:
        if dim != 0 or cpu is not True:
            raise ValueError(
                f"Unbatchify(dim={dim!r}, cpu={cpu!r}): padlc's unbatch removes axis 0 and moves "
                "the outputs to the CPU. Move the axis in the forward instead (before `unbatch`)."
            )

    def _pd_call(self, value: Any) -> Any:
        context = self._pd_context()
        if context.device != "cpu":
            value = move_to_device(value, "cpu")
        if context.mode == "infer" and context.batched:
            return remove_batch_axis(value)
        return value


identity = Identity()
batch = Batchify()
unbatch = Unbatchify()
