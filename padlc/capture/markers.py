"""``value(x)`` and ``param(name, default)``: marks on values that tell :func:`padlc.save` how to store them.

Both return an object that behaves like ``x`` (a subclass of its type carrying the mark), so the
mark travels with the object wherever the pipeline refers to it: saving finds it by identity.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

__all__ = ["ParamScope", "loading_params", "param", "value"]


class _Forced:
    """Mixin of values marked with :func:`value`: saved as a data file even when small."""

    __slots__ = ()


class _Param:
    """Mixin of values made by :func:`param`; ``_pd_param`` is the parameter's name."""

    _pd_param: str


_MARKED: dict[
    tuple[type, type], type
] = {}  # (mixin, base type) -> marked subclass; fixed set of types

_VALUE_TYPES = (dict, list, tuple, str)
_PARAM_TYPES = (int, float, str, bytes, dict, list, tuple)


def _marked_type(mixin: type, base: type) -> type:
    key = (mixin, base)
    if key not in _MARKED:
        _MARKED[key] = type(base.__name__, (mixin, base), {"__module__": base.__module__})
    return _MARKED[key]


def value(x: Any) -> Any:
    """Save ``x`` by value, as a data file beside the code (JSON, ``.npy`` or safetensors), even
    when it is small enough to be written into the generated module as a literal.

    >>> from padlc import value
    >>> LABELS = value(["negative", "positive"])   # saved as data/LABELS.json
    >>> LABELS[1]
    'positive'

    Numpy arrays and tensors are always saved as data files and are returned unchanged.
    """
    if isinstance(x, _Forced):
        return x
    base = type(x)
    if base in _VALUE_TYPES:
        return _marked_type(_Forced, base)(x)
    if base.__module__ == "numpy" or base.__module__.startswith("torch"):
        return x
    raise TypeError(
        f"value() saves dicts, lists, tuples, strings, numpy arrays and tensors as data files; "
        f"got a {base.__name__}. For an object with its own file format, give its class "
        "`pre_save(self, path, i)` and `post_load(self, path, i)` methods."
    )


class ParamScope:
    """The overrides passed to :func:`padlc.load` and the names the loaded module declared."""

    def __init__(self, overrides: Mapping[str, Any]) -> None:
        self.overrides = dict(overrides)
        self.declared: list[str] = []


_SCOPE: contextvars.ContextVar[ParamScope | None] = contextvars.ContextVar(
    "padlc_param_scope", default=None
)


@contextmanager
def loading_params(overrides: Mapping[str, Any]) -> Iterator[ParamScope]:
    """Make ``param(...)`` calls executed inside the block return the overrides (used by load)."""
    scope = ParamScope(overrides)
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


def param(name: str, default: Any) -> Any:
    """A value that can be replaced when the pipeline is loaded: ``padlc.load(path, name=new)``.

    >>> from padlc import param
    >>> THRESHOLD = param("threshold", 0.5)
    >>> THRESHOLD + 0.25
    0.75

    Supported types: int, float, str, bytes, list, dict, tuple (``bool``/``None`` cannot carry the
    mark: use an int or a str).
    """
    if not name.isidentifier():
        raise ValueError(
            f"param names must be identifiers (they are keyword arguments of load); got {name!r}."
        )
    scope = _SCOPE.get()
    current = default
    if scope is not None:
        scope.declared.append(name)
        if name in scope.overrides:
            current = scope.overrides[name]
    base = type(current)
    if isinstance(current, _Param):
        base = next(b for b in base.__mro__[1:] if b in _PARAM_TYPES)
    if base not in _PARAM_TYPES:
        raise TypeError(
            f"param({name!r}, ...) got a {base.__name__}; params can be "
            f"{', '.join(t.__name__ for t in _PARAM_TYPES)}."
        )
    marked = _marked_type(_Param, base)(current)
    marked._pd_param = name
    return marked


def param_name(x: Any) -> str | None:
    return x._pd_param if isinstance(x, _Param) else None


def is_forced(x: Any) -> bool:
    return isinstance(x, _Forced)


def plain(x: Any) -> Any:
    """The unmarked value (``list`` for a marked list)."""
    for base in type(x).__mro__[1:]:
        if base in _PARAM_TYPES or base in _VALUE_TYPES:
            return base(x)
    return x
