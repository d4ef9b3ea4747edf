"""The stage-boundary optimisation: trailing per-item tensor steps of the preprocess run batched.

``load >> same.float() >> same.div(255) >> same.permute(2, 0, 1) >> batch >> model`` collates uint8
images and converts them inside the compiled forward, on the device, for the whole batch.

Only ``same`` operations from an allow-list move: element-wise methods with number (or dtype)
arguments, and axis methods whose non-negative axis arguments are shifted by one for the batch
axis (``permute(2, 0, 1)`` on an item is ``permute(0, 3, 1, 2)`` on a batch). A function is never
moved: padlc cannot prove it treats a batch like a stack of items.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from padlc.ir import nodes as ir

__all__ = ["batched_operations", "move_to_forward", "split_trailing"]

_ELEMENTWISE = frozenset(
    {
        "float", "half", "double", "bfloat16", "int", "long", "short", "bool", "byte", "to",
        "contiguous", "abs", "neg", "sqrt", "rsqrt", "exp", "log", "log1p", "sigmoid", "relu",
        "tanh", "div", "mul", "add", "sub", "true_divide", "clamp", "clip", "pow", "round",
        "floor", "ceil",
    }
)  # fmt: skip
#: method -> which positional arguments are axes ("all": every one)
_AXES: dict[str, Any] = {
    "permute": "all",
    "transpose": "all",
    "unsqueeze": "all",
    "squeeze": "all",
    "flatten": "all",
    "movedim": "all",
    "softmax": (0,),
    "log_softmax": (0,),
    "argmax": (0,),
    "argmin": (0,),
    "sum": (0,),
    "mean": (0,),
    "amax": (0,),
    "amin": (0,),
}
_AXIS_KWARGS = {"dim", "start_dim", "end_dim", "dim0", "dim1"}


def _number(value: Any) -> bool:
    return isinstance(value, bool | int | float | torch.dtype)


def _shift(axis: Any) -> Any:
    if isinstance(axis, tuple | list):
        return type(axis)(_shift(a) for a in axis)
    return axis + 1 if isinstance(axis, int) and axis >= 0 else axis


def batched_operations(node: ir.Node) -> tuple[tuple[Any, ...], ...] | None:
    """The operations of a ``same`` step rewritten for a batch, or ``None`` if it cannot move."""
    if not isinstance(node, ir.Attr):
        return None
    operations = node.operations
    if len(operations) % 2 or not operations:
        return None
    out: list[tuple[Any, ...]] = []
    for attr, call in zip(operations[::2], operations[1::2]):
        if attr[0] != "attr" or call[0] != "call":
            return None
        name, args, kwargs = attr[1], call[1], call[2]
        if name in _ELEMENTWISE:
            if not all(_number(a) for a in (*args, *kwargs.values())):
                return None
            if name == "to" and not all(
                isinstance(a, torch.dtype) for a in (*args, *kwargs.values())
            ):
                return None
            out += [attr, call]
        elif name in _AXES:
            positions = _AXES[name]
            if not all(isinstance(a, int | tuple | list) for a in args):
                return None
            if set(kwargs) - _AXIS_KWARGS - {"keepdim"}:
                return None
            new_args = tuple(
                _shift(a) if positions == "all" or i in positions else a for i, a in enumerate(args)
            )
            new_kwargs = {k: (_shift(v) if k in _AXIS_KWARGS else v) for k, v in kwargs.items()}
            if name in ("sum", "mean", "amax", "amin", "argmax", "argmin") and not (
                args or "dim" in kwargs
            ):
                return None  # a reduction over everything would reduce over the batch too
            if name == "permute":
                dims = (
                    new_args[0]
                    if len(new_args) == 1 and isinstance(new_args[0], tuple | list)
                    else new_args
                )
                new_args = (0, *dims)
            if name == "flatten" and not args and "start_dim" not in kwargs:
                new_args = (1,)
            if name == "squeeze" and not args and "dim" not in kwargs:
                return None  # would also drop a batch axis of size 1
            out += [attr, ("call", new_args, new_kwargs)]
        else:
            return None
    return tuple(out)


def split_trailing(steps: tuple[ir.Node, ...]) -> tuple[list[ir.Node], list[ir.Attr]]:
    """``steps`` without the trailing movable ``same`` steps, and those steps (rewritten)."""
    kept = list(steps)
    moved: list[ir.Attr] = []
    while kept:
        operations = batched_operations(kept[-1])
        if operations is None:
            break
        node = kept.pop()
        assert isinstance(node, ir.Attr)
        moved.insert(0, replace(node, operations=operations))
    return kept, moved


def move_to_forward(pre: ir.Node, forward: ir.Node) -> tuple[ir.Node, ir.Node, tuple[str, ...]]:
    """Move trailing batch-safe steps of ``pre`` (which ends with ``batch``) into ``forward``."""
    if not isinstance(pre, ir.Seq) or not pre.steps or not isinstance(pre.steps[-1], ir.Batch):
        return pre, forward, ()
    kept, moved = split_trailing(pre.steps[:-1])
    if not moved:
        return pre, forward, ()
    new_pre = replace(pre, steps=(*kept, pre.steps[-1]))
    new_forward = ir.Seq(steps=(*moved, forward), label=forward.label, location=forward.location)
    return new_pre, new_forward, tuple(m.label for m in moved)
