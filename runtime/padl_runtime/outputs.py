"""The type of a rollout's or a parallel's output: a namedtuple named ``namedtuple``, as in PADL.

``collections.namedtuple(...)`` called at run time makes a class that pickle cannot find again
(pickle looks a class up by its module and name), so such outputs could not go to another process:
not to ``post_workers``, not out of a DataLoader worker. :func:`output_tuple` makes one type per
tuple of field names, shared by padlc, the runtime and generated code, whose instances pickle as
their field names and values and unpickle in any process.

>>> import pickle
>>> Output = output_tuple(("label", "score"))
>>> out = Output(3, 0.9)
>>> out, pickle.loads(pickle.dumps(out)) == out, output_tuple(["label", "score"]) is Output
(namedtuple(label=3, score=0.9), True, True)
>>> pickle.loads(pickle.dumps(Output)) is Output
True
"""

from __future__ import annotations

import functools
from collections import namedtuple
from collections.abc import Iterable
from typing import Any

__all__ = ["output_tuple"]


def output_tuple(fields: Iterable[str]) -> type[tuple[Any, ...]]:
    """The namedtuple type with these field names (the same type for the same names)."""
    return _made(tuple(fields))


@functools.cache
def _made(fields: tuple[str, ...]) -> type[tuple[Any, ...]]:
    made = namedtuple("namedtuple", fields)  # type: ignore[misc]
    made.__module__ = __name__
    # The type itself pickles by reference too (a pipeline holding it can go to a worker): pickle
    # finds it as this module's attribute `namedtuple(a,b)`, which __getattr__ below makes.
    made.__qualname__ = f"namedtuple({','.join(fields)})"
    made.__reduce__ = _reduce  # type: ignore[method-assign]
    return made  # type: ignore[no-any-return]


def __getattr__(name: str) -> Any:
    if name.startswith("namedtuple(") and name.endswith(")"):
        fields = name[len("namedtuple(") : -1]
        return _made(tuple(fields.split(",")) if fields else ())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _reduce(self: Any) -> tuple[Any, tuple[tuple[str, ...], tuple[Any, ...]]]:
    return _rebuild, (self._fields, tuple(self))


def _rebuild(fields: tuple[str, ...], values: tuple[Any, ...]) -> Any:
    return _made(tuple(fields))(*values)
