"""The operations ``same`` records (``same.lower()``, ``same[:, 0]``, ``same.shape``).

A ``same`` chain is a tuple of three kinds of operation, each a frozen, slotted node: :class:`GetAttr`
(``.name``), :class:`GetItem` (``[key]``) and :class:`CallValue` (``(*args, **kwargs)``: calling
the value, a method call when it follows a :class:`GetAttr`). The IR keeps the same nodes
(:class:`padlc.ir.Attr`), and every pass matches them exhaustively:

>>> def describe(operation: Operation) -> str:
...     match operation:
...         case GetAttr(name):
...             return f".{name}"
...         case GetItem(key):
...             return f"[{key!r}]"
...         case CallValue(args, kwargs):
...             return f"({len(args)} args)"
...         case _:
...             unknown_operation(operation)
>>> describe(GetItem(0))
'[0]'

``unknown_operation`` takes ``Never``: mypy reports a ``match`` that forgot a kind, and at run time
a new kind raises instead of falling into the last branch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NoReturn

__all__ = [
    "CallValue",
    "GetAttr",
    "GetItem",
    "Operation",
    "format_key",
    "to_source",
    "unknown_operation",
]


@dataclass(frozen=True, slots=True)
class GetAttr:
    """``value.name``."""

    name: str


@dataclass(frozen=True, slots=True)
class GetItem:
    """``value[key]`` (``key`` is a slice, a tuple of keys, an int, a string...)."""

    key: Any


@dataclass(frozen=True, slots=True)
class CallValue:
    """``value(*args, **kwargs)``."""

    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


Operation = GetAttr | GetItem | CallValue


def unknown_operation(operation: NoReturn) -> NoReturn:
    """The default branch of a ``match`` over :data:`Operation` (``assert_never``)."""
    raise TypeError(f"unknown `same` operation {operation!r}")


def format_key(key: Any) -> str:
    """``key`` as written between brackets: ``1:3``, ``..., 0``, ``'name'``."""
    if isinstance(key, slice):
        parts = ["" if v is None else repr(v) for v in (key.start, key.stop, key.step)]
        text = f"{parts[0]}:{parts[1]}"
        return text + (f":{parts[2]}" if key.step is not None else "")
    if isinstance(key, tuple):
        return ", ".join(format_key(k) for k in key)
    if key is Ellipsis:
        return "..."
    return repr(key)


def to_source(operations: tuple[Operation, ...], argument: str) -> str:
    """The operations as Python source applied to ``argument`` (values by ``repr``)."""
    text = argument
    for operation in operations:
        match operation:
            case GetAttr(name):
                text += f".{name}"
            case GetItem(key):
                text += f"[{format_key(key)}]"
            case CallValue(args, kwargs):
                parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
                text += f"({', '.join(parts)})"
            case _:
                unknown_operation(operation)
    return text
