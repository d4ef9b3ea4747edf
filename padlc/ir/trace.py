"""Tracing language objects into IR nodes, and the passes over the IR.

The stage split is the language's own (``t._pd_stages()``); tracing only translates each stage.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import torch

from padlc.ir import nodes as ir
from padlc.language.atomic import (
    ClassTransform,
    FunctionTransform,
    TorchModuleTransform,
    user_class_of,
)
from padlc.language.base import Transform
from padlc.language.combinators import Compose, Map, Parallel, Rollout
from padlc.language.markers import Batchify, Identity, Unbatchify
from padlc.language.modes import IfInMode, Try
from padlc.language.same import Same

__all__ = ["iter_calls", "plain_callable", "resolve_mode", "trace", "trace_stages"]


def _label(t: Transform) -> str:
    try:
        return t._pd_short_repr()
    except Exception:  # pragma: no cover - printing must never break tracing
        return type(t).__name__


def _arity(fn: Callable[..., Any], method: bool) -> int | None:
    """How many values an unpacked tuple input holds: the positional parameters, when none has a
    default and there is no ``*args`` (else the number depends on the input: ``None``)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if method and params and params[0].name == "self":
        params = params[1:]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind is p.VAR_POSITIONAL for p in params) or any(
        p.default is not p.empty for p in positional
    ):
        return None
    return len(positional)


def plain_callable(t: Transform) -> Any:
    """The user's object without padlc's wrapper: the function, or the instance as its own class.

    A wrapped instance shares its state (weights) with the transform; only its class differs, so
    torch (export, TorchScript) sees the user's module and not padlc's mixin.
    """
    if isinstance(t, FunctionTransform):
        return t.function
    wrapped = t.__dict__.get("_pd_wrapped")
    if wrapped is not None:
        return wrapped
    user_class = type(t).__dict__.get("_pd_user_class")
    if user_class is None:  # pragma: no cover - a Transform subclass written by hand
        return t
    plain = copy.copy(t)
    for key in [k for k in vars(plain) if k.startswith("_pd_")]:
        del plain.__dict__[key]
    plain.__class__ = user_class
    return plain


def trace(t: Transform) -> ir.Node:
    """The IR of one transform (a whole stage, or any part of a pipeline)."""
    common: dict[str, Any] = {"label": _label(t), "location": t._pd_location}
    if isinstance(t, Batchify):
        return ir.Batch(**common)
    if isinstance(t, Unbatchify):
        return ir.Unbatch(**common)
    if isinstance(t, Identity):
        return ir.Identity(**common)
    if isinstance(t, Compose):
        return ir.Seq(steps=tuple(trace(c) for c in t._pd_transforms), **common)
    if isinstance(t, Rollout):
        return ir.Rollout(
            branches=tuple(trace(c) for c in t._pd_transforms), fields=t.pd_keys, **common
        )
    if isinstance(t, Parallel):
        return ir.Parallel(
            branches=tuple(trace(c) for c in t._pd_transforms), fields=t.pd_keys, **common
        )
    if isinstance(t, Map):
        return ir.Map(body=trace(t._pd_transform), **common)
    if isinstance(t, IfInMode):
        return ir.Switch(mode=t.target_mode, if_=trace(t.if_), else_=trace(t.else_), **common)
    if isinstance(t, Try):
        return ir.Try(
            body=trace(t.transform),
            catch=trace(t.catch_transform),
            exceptions=t.exceptions,
            else_=trace(t.else_transform),
            finally_=trace(t.finally_transform),
            **common,
        )
    if isinstance(t, Same):
        return ir.Attr(operations=tuple(t._pd_operations), **common)
    if isinstance(t, FunctionTransform):
        return ir.Call(
            transform=t,
            target=t.function,
            kind="function",
            unpack=t._pd_unpack,
            arity=_arity(t.function, method=False),
            **common,
        )
    if isinstance(t, ClassTransform):
        user_class = user_class_of(type(t))
        is_layer = isinstance(t, TorchModuleTransform)
        method = getattr(user_class, "forward" if is_layer else "__call__", None)
        return ir.Call(
            transform=t,
            target=plain_callable(t),
            kind="layer" if is_layer else "object",
            unpack=t._pd_unpack,
            arity=_arity(method or (lambda self: None), method=True),
            **common,
        )
    raise TypeError(  # pragma: no cover - every language class is handled above
        f"padlc.ir cannot trace `{_label(t)}` (a {type(t).__name__})."
    )


def trace_stages(t: Transform) -> ir.StagesIR:
    """The IR of each stage of ``t``, split by the language's rules (``t._pd_stages()``)."""
    stages = t._pd_stages()
    return ir.StagesIR(
        preprocess=trace(stages.preprocess),
        forward=trace(stages.forward),
        postprocess=trace(stages.postprocess),
        has_batch=stages.has_batch,
        has_unbatch=stages.has_unbatch,
    )


def resolve_mode(node: ir.Node, mode: str) -> ir.Node:
    """Replace every :class:`~padlc.ir.nodes.Switch` by the branch taken in ``mode``."""
    if isinstance(node, ir.Switch):
        return resolve_mode(node.if_ if node.mode == mode else node.else_, mode)
    if isinstance(node, ir.Seq):
        return ir.Seq(
            steps=tuple(resolve_mode(s, mode) for s in node.steps),
            label=node.label,
            location=node.location,
        )
    if isinstance(node, ir.Rollout | ir.Parallel):
        return type(node)(
            branches=tuple(resolve_mode(b, mode) for b in node.branches),
            fields=node.fields,
            label=node.label,
            location=node.location,
        )
    if isinstance(node, ir.Map):
        return ir.Map(body=resolve_mode(node.body, mode), label=node.label, location=node.location)
    if isinstance(node, ir.Try):
        return ir.Try(
            body=resolve_mode(node.body, mode),
            catch=resolve_mode(node.catch, mode),
            exceptions=node.exceptions,
            else_=resolve_mode(node.else_, mode),
            finally_=resolve_mode(node.finally_, mode),
            label=node.label,
            location=node.location,
        )
    return node


def children(node: ir.Node) -> tuple[ir.Node, ...]:
    if isinstance(node, ir.Seq):
        return node.steps
    if isinstance(node, ir.Rollout | ir.Parallel):
        return node.branches
    if isinstance(node, ir.Map):
        return (node.body,)
    if isinstance(node, ir.Switch):
        return (node.if_, node.else_)
    if isinstance(node, ir.Try):
        return (node.body, node.catch, node.else_, node.finally_)
    return ()


def iter_calls(node: ir.Node) -> Iterator[ir.Call]:
    """Every :class:`~padlc.ir.nodes.Call` in the tree, depth first, each transform once."""
    seen: set[int] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ir.Call) and id(current.transform) not in seen:
            seen.add(id(current.transform))
            yield current
        stack.extend(reversed(children(current)))


def is_layer(value: Any) -> bool:
    return isinstance(value, torch.nn.Module)
