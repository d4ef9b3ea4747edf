"""``value(x)`` and ``param(name, val)``: marks on values that tell :func:`padlc.save` how to store them.

Both return an object that behaves like ``x`` (a subclass of its type carrying the mark), so the
mark travels with the object wherever the pipeline refers to it: saving finds it by identity.
"""

from __future__ import annotations

import contextvars
import copy
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["ParamScope", "ValueSerializer", "loading_params", "param", "value"]


class _Forced:
    """Mixin of values marked with :func:`value`: saved as a data file even when small."""

    __slots__ = ()


class _Param:
    """Mixin of values made by :func:`param`; ``_pd_param`` is the parameter's name."""

    _pd_param: str
    _pd_description: str | None = None
    _pd_use_default: bool = True


class _Serialized:
    """Mixin of values given a serializer by :func:`value`; ``_pd_serializer`` is it."""

    _pd_serializer: ValueSerializer


_MARKED: dict[
    tuple[type, type], type
] = {}  # (mixin, base type) -> marked subclass; fixed set of types
# Marked subclasses of other classes (a user's tokenizer given a serializer): one per class, let go
# with the class.
_SERIALIZED: weakref.WeakKeyDictionary[type, type] = weakref.WeakKeyDictionary()

_VALUE_TYPES = (dict, list, tuple, str)
_PARAM_TYPES = (int, float, str, bytes, dict, list, tuple)
_LITERALS = (bool, int, float, complex, type(None))


def _is_ndarray(cls: type) -> bool:
    return cls.__module__ == "numpy" and cls.__name__ == "ndarray"  # numpy is optional


def _marked_type(mixin: type, base: type) -> type:
    key = (mixin, base)
    if key not in _MARKED:
        namespace: dict[str, Any] = {"__module__": base.__module__}
        if issubclass(base, torch.Tensor):
            # operations on the marked tensor give plain tensors: the mark stays on the value
            namespace["__torch_function__"] = torch._C._disabled_torch_function_impl
        _MARKED[key] = type(base.__name__, (mixin, base), namespace)
    return _MARKED[key]


@dataclass(frozen=True)
class ValueSerializer:
    """How :func:`padlc.save` stores a value given ``value(x, (save, load, suffix))``.

    ``save(x, path)`` writes ``x`` at ``path`` (in the artifact's data directory, ending with
    ``suffix``), or anywhere under the artifact and returns the file name or the list of file
    names it wrote; ``load(path)`` gets that path (or list of paths) back and returns the value.
    """

    save: Callable[[Any, Any], Any]
    load: Callable[[Any], Any]
    suffix: str = ""


def _serializer(spec: Any) -> ValueSerializer:
    if isinstance(spec, ValueSerializer):
        return spec
    if isinstance(spec, tuple | list) and len(spec) in (2, 3):
        save, load, *rest = spec
        suffix = rest[0] if rest else ""
        if callable(save) and callable(load) and isinstance(suffix, str):
            return ValueSerializer(save, load, suffix)
    raise TypeError(
        f"value(x, serializer): the serializer is a tuple (save, load) or (save, load, suffix), "
        f"with save(value, path), load(path) and a file suffix such as '.npy'; got {spec!r}."
    )


def _with_serializer(x: Any, serializer: ValueSerializer) -> Any:
    """A copy of ``x`` (sharing its contents) whose class carries ``serializer``."""
    base = type(x)
    if base in _PARAM_TYPES or base is bytes:
        marked = _marked_type(_Serialized, base)(x)
    elif isinstance(x, torch.Tensor):
        marked = x.as_subclass(_marked_type(_Serialized, torch.Tensor))
    elif _is_ndarray(base):
        marked = x.view(_marked_type(_Serialized, base))
    else:
        wrapped = _SERIALIZED.get(base)
        if wrapped is None:
            wrapped = type(base.__name__, (_Serialized, base), {"__module__": base.__module__})
            _SERIALIZED[base] = wrapped
        try:
            marked = copy.copy(x)
            marked.__class__ = wrapped
        except TypeError as exc:
            raise TypeError(
                f"value(x, serializer) cannot mark a {base.__name__} ({exc}). Give the object's "
                "class `pre_save(self, path, i)` and `post_load(self, path, i)` methods instead, "
                "or pass value() its data (a list, an array) and build the object from it."
            ) from None
    marked.__dict__["_pd_serializer"] = serializer
    return marked


def value(x: Any, serializer: Any = None) -> Any:
    """Save ``x`` by value: as a data file beside the code (JSON, ``.npy`` or safetensors) even
    when it is small enough to be written into the generated module as a literal.

    >>> from padlc import value
    >>> LABELS = value(["negative", "positive"])   # saved as data/LABELS.json
    >>> LABELS[1]
    'positive'

    Numbers, ``True``/``False`` and ``None`` are returned unchanged: they are written as exact
    literals. Numpy arrays and tensors are always saved as data files and are returned unchanged.

    ``serializer=(save, load, suffix)`` stores ``x`` with your own functions: ``save(x, path)``
    writes it at ``path`` (in the artifact's data directory, ending with ``suffix``) and the loaded
    code calls ``load(path)``. ``save`` may instead return the file name, or a list of file names,
    it wrote under the artifact (then ``suffix`` may be left out); ``load`` then gets those paths::

        def save_npy(val, path):
            np.save(path, val)

        TABLE = value(np.eye(3), (save_npy, np.load, ".npy"))

    (To save every instance of a class with its own files, register a serializer for the class
    with :func:`padlc.serializer` instead.)
    """
    if serializer is not None:
        return _with_serializer(plain(x), _serializer(serializer))
    if isinstance(x, _Forced | _Serialized):
        return x
    base = type(x)
    if base in _LITERALS:
        return x
    if base in _VALUE_TYPES:
        return _marked_type(_Forced, base)(x)
    if base.__module__ == "numpy" or base.__module__.startswith("torch"):
        return x
    raise TypeError(
        f"value() saves numbers, dicts, lists, tuples, strings, numpy arrays and tensors as data; "
        f"got a {base.__name__}. Pass value(x, (save, load, suffix)) to store it with your own "
        f"functions, register a serializer for its class (padlc.serializer), or give "
        f"{base.__name__} `pre_save(self, path, i)` and `post_load(self, path, i)` methods."
    )


class ParamScope:
    """The overrides passed to :func:`padlc.load` and the params the loaded module declared."""

    def __init__(self, overrides: Mapping[str, Any]) -> None:
        self.overrides = dict(overrides)
        self.declared: list[str] = []
        #: name -> description, of the params declared with one
        self.descriptions: dict[str, str] = {}
        #: params declared with ``use_default=False`` and not given to load
        self.missing: list[str] = []


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


def param(name: str, val: Any, description: str | None = None, use_default: bool = True) -> Any:
    """A value that can be replaced when the pipeline is loaded:
    ``padlc.load(path, params={name: new})``.

    >>> from padlc import param
    >>> THRESHOLD = param("threshold", 0.5, "minimum score of a positive")
    >>> THRESHOLD + 0.25
    0.75

    ``use_default=False`` makes the parameter mandatory at load: ``padlc.load(path)`` then raises
    ``ValueError`` until ``padlc.load(path, params={"threshold": ...})`` gives it. Supported types: int, float,
    str, bytes, list, dict, tuple (``bool``/``None`` cannot carry the mark: use an int or a str).
    """
    if not isinstance(name, str):
        raise TypeError(
            f"param(name, val, ...) takes the parameter's name first, then its value: "
            f"param('threshold', 0.5); got the name {name!r}."
        )
    if not name.isidentifier():
        raise ValueError(
            f"param names must be identifiers (the keys of padlc.load's params); got {name!r}."
        )
    scope = _SCOPE.get()
    current = val
    if scope is not None:
        scope.declared.append(name)
        if description is not None:
            scope.descriptions[name] = description
        if name in scope.overrides:
            current = scope.overrides[name]
        elif not use_default:
            scope.missing.append(name)
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
    if description is not None:
        marked._pd_description = description
    if not use_default:
        marked._pd_use_default = False
    return marked


def param_name(x: Any) -> str | None:
    return x._pd_param if isinstance(x, _Param) else None


def param_options(x: _Param) -> tuple[str | None, bool]:
    """``(description, use_default)`` of a value made by :func:`param`."""
    return x._pd_description, x._pd_use_default


def is_forced(x: Any) -> bool:
    return isinstance(x, _Forced)


def serializer_of(x: Any) -> ValueSerializer | None:
    """The serializer ``value(x, serializer)`` gave ``x`` (``None`` for an object derived from it,
    such as the result of an operation on a marked array)."""
    if not isinstance(x, _Serialized):
        return None
    return getattr(x, "__dict__", {}).get("_pd_serializer")


def plain(x: Any) -> Any:
    """The unmarked value (``list`` for a marked list, the array for a marked array)."""
    marks = (_Forced, _Param, _Serialized)
    if not isinstance(x, marks):
        return x
    return _unmarked(x, next(b for b in type(x).__mro__[1:] if not issubclass(b, marks)))


def _unmarked(x: Any, base: Any) -> Any:
    """``x``, an instance of a marked subclass of ``base``, as a ``base``."""
    if base in _PARAM_TYPES or base in _VALUE_TYPES or base is bytes:
        return base(x)
    if isinstance(x, torch.Tensor):
        return x.as_subclass(torch.Tensor)
    if _is_ndarray(base):
        return x.view(base)
    unmarked = copy.copy(x)
    unmarked.__class__ = base
    unmarked.__dict__.pop("_pd_serializer", None)
    return unmarked
