"""The stage-boundary optimisation: per-item tensor steps next to the forward run batched in it.

``load >> same.float() >> same.div(255) >> same.permute(2, 0, 1) >> batch >> model`` collates uint8
images and converts them inside the compiled forward, on the device, for the whole batch. On the
other side, ``model >> unbatch >> same.softmax(-1) >> same.argmax(-1) >> to_label`` runs the softmax
and argmax batched at the end of the forward (:func:`move_from_post`): the postprocess receives each
item's label index instead of computing it item by item. Only ``same`` steps move out of the
postprocess (it has no examples of forward outputs to check functions on).

Two kinds of step move, as a trailing run (a step moves only when every step after it does):

- ``same`` operations from an allow-list: element-wise methods with number (or dtype) arguments,
  and axis methods whose non-negative axis arguments are shifted by one for the batch axis
  (``permute(2, 0, 1)`` on an item is ``permute(0, 3, 1, 2)`` on a batch).
- plain function transforms (no unpacking) that ``torch.vmap`` reproduces on the build's examples:
  the preprocess is run up to the function on every example, the function is applied per item and
  ``torch.vmap(function)`` to the stacked items, and the results must agree (exactly for integer
  dtypes, within the build's tolerance for floats, same shapes and dtypes). The forward then runs
  ``torch.vmap(function)(batch)`` (the Call node's ``vmap`` flag). Functions vmap rejects
  (``.item()``, ``.tolist()``, control flow on values, randomness) or answers differently stay in
  the preprocess, and so do the steps before them.

The examples cannot prove a function batch-safe for every input, so the build verifies the
artifact on them as usual and falls back to moving only ``same`` steps when a backend cannot lower
or reproduce the moved functions (:func:`padlc.builder.core.build`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from padl_runtime.outputs import output_tuple
from padlc.ir import nodes as ir
from padlc.language.operations import unknown_operation

__all__ = [
    "batched_operations",
    "move_from_post",
    "move_to_forward",
    "split_trailing",
    "vmap_reproduces",
]

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


def batched_operations(node: ir.Node) -> tuple[ir.Operation, ...] | None:
    """The operations of a ``same`` step rewritten for a batch, or ``None`` if it cannot move."""
    if not isinstance(node, ir.Attr):
        return None
    operations = node.operations
    if len(operations) % 2 or not operations:
        return None
    out: list[ir.Operation] = []
    for attr, call in zip(operations[::2], operations[1::2]):
        if not isinstance(attr, ir.GetAttr) or not isinstance(call, ir.CallValue):
            return None
        name, args, kwargs = attr.name, call.args, call.kwargs
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
            out += [attr, ir.CallValue(new_args, new_kwargs)]
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


class _Unsupported(Exception):
    """The preprocess before a candidate function holds a node this module does not evaluate."""


def _evaluate(node: ir.Node, value: Any) -> Any:
    """``node`` applied to one item, as infer mode does (modes are already resolved)."""
    if isinstance(node, ir.Identity | ir.Batch | ir.Unbatch):
        return value
    if isinstance(node, ir.Seq):
        for step in node.steps:
            value = _evaluate(step, value)
        return value
    if isinstance(node, ir.Call):
        if node.unpack and isinstance(value, tuple | list):
            return node.target(*value)
        return node.target(value)
    if isinstance(node, ir.Attr):
        for operation in node.operations:
            match operation:
                case ir.GetAttr(name):
                    value = getattr(value, name)
                case ir.GetItem(key):
                    value = value[key]
                case ir.CallValue(args, kwargs):
                    value = value(*args, **kwargs)
                case _:
                    unknown_operation(operation)
        return value
    if isinstance(node, ir.Rollout | ir.Parallel):
        if isinstance(node, ir.Rollout):
            outs = [_evaluate(b, value) for b in node.branches]
        else:
            outs = [_evaluate(b, v) for b, v in zip(node.branches, value, strict=True)]
        return output_tuple(node.fields)(*outs)
    if isinstance(node, ir.Map):
        return tuple(_evaluate(node.body, v) for v in value)
    raise _Unsupported(type(node).__name__)


def _movable_function(node: ir.Node) -> bool:
    return isinstance(node, ir.Call) and node.kind == "function" and not node.unpack


def _agree(a: torch.Tensor, b: torch.Tensor, tolerance: float) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point() or a.is_complex():
        return torch.allclose(a, b, rtol=tolerance, atol=tolerance, equal_nan=True)
    return torch.equal(a, b)


def vmap_reproduces(function: Any, items: Sequence[Any], tolerance: float) -> bool:
    """Whether ``torch.vmap(function)`` on the stacked ``items`` equals ``function`` per item.

    The items must be plain tensors of one shape and dtype, and every output a tensor.

    >>> vmap_reproduces(lambda x: x / x.sum(), [torch.ones(3), torch.arange(3.0)], 1e-4)
    True
    >>> vmap_reproduces(lambda x: x * x.sum().item(), [torch.ones(3), torch.ones(3)], 1e-4)
    False
    """
    if not items or not all(type(v) is torch.Tensor for v in items):
        return False
    if len({(v.shape, v.dtype, v.device) for v in items}) != 1:
        return False
    try:
        with torch.no_grad():
            per_item = [function(v.clone()) for v in items]
            batched = torch.vmap(function)(torch.stack(list(items)))
    except Exception:  # anything vmap refuses keeps the function in the preprocess
        return False
    if type(batched) is not torch.Tensor or not all(type(o) is torch.Tensor for o in per_item):
        return False
    if batched.shape[:1] != (len(items),):
        return False
    return all(_agree(o, b, tolerance) for o, b in zip(per_item, batched, strict=True))


def _trailing_functions(
    steps: tuple[ir.Node, ...], examples: Sequence[Any], tolerance: float
) -> set[int]:
    """Indices of the trailing candidate functions that vmap reproduces on ``examples``."""
    start = len(steps)
    while start and (
        batched_operations(steps[start - 1]) is not None or _movable_function(steps[start - 1])
    ):
        start -= 1
    if not any(_movable_function(s) for s in steps[start:]) or not examples:
        return set()
    safe: set[int] = set()
    try:
        with torch.no_grad():
            values = [_evaluate(ir.Seq(steps=steps[:start]), x) for x in examples]
            for index in range(start, len(steps)):
                step = steps[index]
                if _movable_function(step):
                    assert isinstance(step, ir.Call)
                    if vmap_reproduces(step.target, values, tolerance):
                        safe.add(index)
                    else:
                        safe.clear()  # a function that stays keeps the steps before it too
                values = [_evaluate(step, v) for v in values]
    except Exception:  # an example the prefix rejects: the build reports it itself
        return set()
    return safe


def move_to_forward(
    pre: ir.Node,
    forward: ir.Node,
    examples: Sequence[Any] = (),
    *,
    tolerance: float = 1e-4,
    functions: bool = True,
) -> tuple[ir.Node, ir.Node, tuple[str, ...]]:
    """Move trailing batch-safe steps of ``pre`` (which ends with ``batch``) into ``forward``.

    ``examples`` (raw items) decide which trailing functions may move (``functions=False``: none);
    returns the new preprocess, the new forward and the labels of the moved steps.
    """
    if not isinstance(pre, ir.Seq) or not pre.steps or not isinstance(pre.steps[-1], ir.Batch):
        return pre, forward, ()
    steps = pre.steps[:-1]
    safe = _trailing_functions(steps, examples, tolerance) if functions else set()
    kept = list(steps)
    moved: list[ir.Node] = []
    while kept:
        index, node = len(kept) - 1, kept[-1]
        operations = batched_operations(node)
        if isinstance(node, ir.Attr) and operations is not None:
            moved.insert(0, replace(node, operations=operations))
        elif isinstance(node, ir.Call) and index in safe:
            moved.insert(0, replace(node, vmap=True))
        else:
            break
        kept.pop()
    if not moved:
        return pre, forward, ()
    new_pre = replace(pre, steps=(*kept, pre.steps[-1]))
    new_forward = ir.Seq(steps=(*moved, forward), label=forward.label, location=forward.location)
    return new_pre, new_forward, tuple(m.label for m in moved)


def move_from_post(forward: ir.Node, post: ir.Node) -> tuple[ir.Node, ir.Node, tuple[str, ...]]:
    """Move leading batch-safe ``same`` steps of ``post`` (which starts with ``unbatch``) to the end
    of ``forward``; returns the new forward, the new postprocess and the labels of the moved steps.
    """
    if not isinstance(post, ir.Seq) or not post.steps or not isinstance(post.steps[0], ir.Unbatch):
        return forward, post, ()
    steps = post.steps[1:]
    moved: list[ir.Attr] = []
    for node in steps:
        operations = batched_operations(node)
        if operations is None:
            break
        assert isinstance(node, ir.Attr)  # batched_operations takes only `same` steps
        moved.append(replace(node, operations=operations))
    if not moved:
        return forward, post, ()
    new_forward = ir.Seq(steps=(forward, *moved), label=forward.label, location=forward.location)
    new_post = replace(post, steps=(post.steps[0], *steps[len(moved) :]))
    return new_forward, new_post, tuple(m.label for m in moved)
