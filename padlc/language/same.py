"""``same``: attribute, method and item access as transforms (``same.lower()``, ``same[:, 0]``)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from operator import attrgetter, itemgetter, methodcaller
from typing import Any

from padlc.language.base import Transform
from padlc.language.operations import (
    CallValue,
    GetAttr,
    GetItem,
    Operation,
    to_source,
    unknown_operation,
)

__all__ = ["Same", "same"]


def _call_with(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return value(*args, **kwargs)


def _step(operation: Operation) -> Callable[[Any], Any]:
    match operation:
        case GetAttr(name):
            return attrgetter(name)
        case GetItem(key):
            return itemgetter(key)
        case CallValue(args, kwargs):
            return partial(_call_with, args=args, kwargs=kwargs)
        case _:
            unknown_operation(operation)


def _compile(operations: tuple[Operation, ...]) -> Callable[[Any], Any]:
    """One callable for the chain; an attribute followed by a call becomes ``methodcaller``, which
    runs in C (``same.item()`` is applied once per item in batched applies)."""
    steps: list[Callable[[Any], Any]] = []
    i = 0
    while i < len(operations):
        operation = operations[i]
        following = operations[i + 1] if i + 1 < len(operations) else None
        if isinstance(operation, GetAttr) and isinstance(following, CallValue):
            steps.append(methodcaller(operation.name, *following.args, **following.kwargs))
            i += 2
            continue
        steps.append(_step(operation))
        i += 1
    if not steps:
        return lambda value: value
    if len(steps) == 1:
        return steps[0]

    def chain(value: Any) -> Any:
        for step in steps:
            value = step(value)
        return value

    return chain


class Same(Transform):
    """A chain of attribute/item/call operations applied to the input.

    ``same.attr`` alone reads the attribute when used in a pipeline; calling it builds the method
    call: ``same.argmax(-1)`` is ``lambda x: x.argmax(-1)``. The result of a call or an index is a
    transform applied by calling it: ``same[0]([1, 2]) == 1``.
    """

    def __init__(self, operations: tuple[Operation, ...] = ()) -> None:
        self._pd_operations = operations
        self._pd_fn = _compile(operations)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_pd_fn", None)  # compiled again on unpickling
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pd_fn = _compile(self._pd_operations)

    def __getattr__(self, name: str) -> _SameAttribute:
        if name.startswith("_"):
            raise AttributeError(name)
        return _SameAttribute((*self._pd_operations, GetAttr(name)))

    def __getitem__(self, key: Any) -> Same:
        return Same((*self._pd_operations, GetItem(key)))

    def _pd_call(self, value: Any) -> Any:
        return self._pd_fn(value)

    def _pd_callable(self) -> Callable[[Any], Any]:
        return self._pd_fn

    def __call__(self, value: Any) -> Any:
        return self._pd_call(value)

    def pd_expression(self, argument: str = "x") -> str:
        """The operations as Python source applied to ``argument`` (``x.argmax(-1)``)."""
        return to_source(self._pd_operations, argument)

    def _pd_short_repr(self) -> str:
        if self._pd_name is not None:
            return self._pd_name
        return self.pd_expression("same")


class _SameAttribute(Same):
    """``same.name``: a transform reading the attribute, and calling it builds a method call."""

    def __call__(self, *args: Any, **kwargs: Any) -> Same:  # type: ignore[override]
        return Same((*self._pd_operations, CallValue(args, kwargs)))


same = Same()
