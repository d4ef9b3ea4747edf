"""Leaf transforms: wrapped functions, classes, instances and modules, and :func:`transform`."""

from __future__ import annotations

import copy
import functools
import importlib
import inspect
import reprlib
import sys
import types
import weakref
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, overload

import torch

from padlc.language.base import Transform, callable_name
from padlc.language.sites import creation_site

__all__ = [
    "ClassTransform",
    "FunctionTransform",
    "ModuleProxy",
    "TorchModuleTransform",
    "transform",
]


def _positional_count(parameters: Iterable[inspect.Parameter]) -> int | None:
    """How many positional parameters (defaults included) take the values of a tuple/list input;
    ``None`` for ``*args`` (any number)."""
    count = 0
    for parameter in parameters:
        if parameter.kind is parameter.VAR_POSITIONAL:
            return None
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def _takes_several(fn: Callable[..., Any]) -> bool:
    """Whether a tuple/list input is unpacked into ``fn(*value)``: PADL's rule, more than one
    positional parameter (those with defaults count: ``f(x, y=10)`` gets ``f(*value)``) or
    ``*args``."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: numpy ufuncs handled below
        nin = getattr(fn, "nin", None)
        return isinstance(nin, int) and nin > 1
    count = _positional_count(signature.parameters.values())
    return count is None or count > 1


class AtomicTransform(Transform):
    """A leaf: applies one callable, unpacking a tuple/list input into several parameters
    (``_pd_unpack``); each kind implements ``_pd_call`` for its callable."""

    _pd_unpack: bool = False


class FunctionTransform(AtomicTransform):
    """A function (``@transform def f``), a lambda, or a callable from another module.

    ``t.function`` is the wrapped function; calling the transform calls it.
    """

    def __init__(
        self, function: Callable[..., Any], site: tuple[str, int, dict[str, Any] | None]
    ) -> None:
        self.function = function
        self._pd_unpack = _takes_several(function)
        self._pd_location = (site[0], site[1])
        self._pd_globals = site[2]
        functools.update_wrapper(self, function, updated=())  # type: ignore[arg-type]

    def _pd_call(self, value: Any) -> Any:
        if self._pd_unpack and isinstance(value, tuple | list):
            return self.function(*value)
        return self.function(value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def _pd_callable(self) -> Callable[[Any], Any]:
        return self._pd_call if self._pd_unpack else self.function

    def _pd_default_name(self) -> str | None:
        return callable_name(self.function)

    def _pd_own_layers(self) -> Iterable[torch.nn.Module]:
        return _layers_used_by(self.function)

    def _pd_layer_sources(self) -> Iterable[tuple[Any, str, Any]]:
        code = getattr(self.function, "__code__", None)
        scope = getattr(self.function, "__globals__", None)
        if code is None or not isinstance(scope, dict):
            return ()
        return [
            (scope, name, scope[name])
            for name in code.co_names
            if isinstance(scope.get(name), torch.nn.Module)
        ]

    def _pd_short_repr(self) -> str:
        name = self._pd_name or callable_name(self.function)
        if name is not None:
            return name
        return self.pd_varname() or _lambda_repr(self.function)

    def __reduce__(self) -> Any:
        # Workers started with `spawn` pickle the stages; the function is pickled by reference,
        # and so is `@transform def f` itself: its module's attribute `f` is this transform.
        module = sys.modules.get(getattr(self.function, "__module__", None) or "")
        qualname = getattr(self.function, "__qualname__", "")
        if module is not None and _attribute(module.__name__, qualname) is self:
            return (_attribute, (module.__name__, qualname))
        return (_rebuild_function_transform, (self.function, self._pd_name, self._pd_location))


def _attribute(module: str, dotted: str) -> Any:
    """``module.dotted``, importing the module (in a worker process it may not be yet)."""
    try:
        owner: Any = importlib.import_module(module)
    except ImportError:  # a module made at run time (a loaded artifact's): not importable by name
        return None
    for part in dotted.split("."):
        owner = getattr(owner, part, None)
    return owner


def _rebuild_function_transform(
    function: Callable[..., Any], name: str | None, location: tuple[str, int] | None
) -> FunctionTransform:
    t = FunctionTransform(function, (location or ("<unknown>", 0)) + (None,))  # type: ignore[arg-type]
    if name is not None:
        t._pd_name = name
    return t


def _lambda_repr(fn: Callable[..., Any]) -> str:
    code = getattr(fn, "__code__", None)
    if code is None:
        return f"<{type(fn).__name__}>"
    return f"<lambda line {code.co_firstlineno}>"


def _layers_used_by(fn: Callable[..., Any]) -> list[torch.nn.Module]:
    """Layers a function refers to through its globals or closure (``pd_layers`` includes them)."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return []
    found: list[torch.nn.Module] = []
    scope = getattr(fn, "__globals__", {})
    for name in code.co_names:
        value = scope.get(name)
        if isinstance(value, torch.nn.Module):
            found.append(value)
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if isinstance(value, torch.nn.Module):
            found.append(value)
    return found


class ClassTransform(AtomicTransform):
    """Mixin of wrapped classes: instances of ``@transform class C`` are ``C`` and transforms.

    Construction arguments are recorded (for printing and saving) in ``__new__``, which sees the
    outermost constructor call even when subclasses call ``super().__init__`` with other values.
    """

    _pd_init: tuple[tuple[Any, ...], dict[str, Any]] | None = None

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        base_new = super().__new__
        instance = base_new(cls) if base_new is object.__new__ else base_new(cls, *args, **kwargs)
        filename, line, scope = creation_site(1)
        instance.__dict__.update(
            _pd_init=(args, kwargs), _pd_location=(filename, line), _pd_globals=scope
        )
        return instance

    def __reduce_ex__(self, protocol: Any) -> Any:
        # `transform(torch.nn.Linear)(3, 4)`: the wrapped class is not its module's attribute
        # (that is Linear itself), so pickle rebuilds it from the user class.
        cls = type(self)
        if _attribute(cls.__module__, cls.__qualname__) is cls:
            return super().__reduce_ex__(protocol)
        return (_new_wrapped, (user_class_of(cls),), self.__getstate__())

    def _pd_call(self, value: Any) -> Any:
        call = type(self).__call__
        if self._pd_unpack and isinstance(value, tuple | list):
            return call(self, *value)
        return call(self, value)

    def _pd_callable(self) -> Callable[[Any], Any]:
        # The instance itself: its class's __call__ (nn.Module.__call__ for layers, so hooks run).
        return self._pd_call if self._pd_unpack else self  # type: ignore[return-value]

    def _pd_own_layers(self) -> Iterable[torch.nn.Module]:
        return [v for v in vars(self).values() if isinstance(v, torch.nn.Module)]

    def _pd_layer_sources(self) -> Iterable[tuple[Any, str, Any]]:
        state = vars(self)
        return [(state, k, v) for k, v in state.items() if isinstance(v, torch.nn.Module)]

    def _pd_short_repr(self) -> str:
        if self._pd_name is not None:
            return self._pd_name
        return self.pd_varname() or self._pd_call_repr()

    def _pd_call_repr(self) -> str:
        name = user_class_of(type(self)).__name__
        if isinstance(self, torch.jit.ScriptModule):
            return f"<scripted {getattr(self, 'original_name', name)}>"
        if self._pd_init is None:
            return _variable_of(self.__dict__.get("_pd_wrapped"), self) or f"<{name} instance>"
        args, kwargs = self._pd_init
        short = reprlib.Repr()
        short.maxstring, short.maxother, short.maxlist, short.maxdict = 20, 20, 4, 4
        parts = [short.repr(a) for a in args] + [f"{k}={short.repr(v)}" for k, v in kwargs.items()]
        return f"{name}({', '.join(parts)})"


def _variable_of(obj: Any, t: Transform) -> str | None:
    """The variable ``transform(obj)``'s creation site bound ``obj`` to (``model``), if any."""
    if obj is None:
        return None
    for scope in (t.__dict__.get("_pd_locals"), t._pd_globals):
        for key, value in (scope or {}).items():
            if value is obj and not key.startswith("_"):
                return key
    return None


class TorchModuleTransform(ClassTransform):
    """Mixin of wrapped ``torch.nn.Module`` classes: applied through ``nn.Module.__call__`` so hooks run."""

    def _pd_call(self, value: Any) -> Any:
        if self._pd_unpack and isinstance(value, tuple | list):
            return torch.nn.Module.__call__(self, *value)  # type: ignore[arg-type]
        return torch.nn.Module.__call__(self, value)  # type: ignore[arg-type]

    def _pd_own_layers(self) -> Iterable[torch.nn.Module]:
        return [self]  # type: ignore[list-item]

    def _pd_layer_sources(self) -> Iterable[tuple[Any, str, Any]]:
        return ()  # the layer is the transform itself

    # A layer prints as torch prints it; inside a pipeline it shows its short name.
    __repr__ = torch.nn.Module.__repr__
    __str__ = torch.nn.Module.__repr__


# A wrapped subclass is made once per user class: the key is the class object itself, whose identity
# does not change; weak keys let classes defined in a loop or a notebook cell be collected.
_WRAPPED: weakref.WeakKeyDictionary[type, type] = weakref.WeakKeyDictionary()


def transform_class_of(cls: type) -> type | None:
    """The transform class ``@transform``/``transform(cls)`` made of ``cls``, if any yet."""
    return _WRAPPED.get(cls)


def user_class_of(cls: type) -> type:
    return cls.__dict__.get("_pd_user_class", cls)  # type: ignore[no-any-return]


def _wrap_class(cls: type) -> type:
    if issubclass(cls, Transform):
        return cls
    wrapped = _WRAPPED.get(cls)
    if wrapped is not None:
        return wrapped
    is_module = issubclass(cls, torch.nn.Module)
    mixin = TorchModuleTransform if is_module else ClassTransform
    # Static lookup: a plain class without __call__ gives None (`getattr` would find
    # type.__call__), and a scripted module's class has a descriptor that fails on the class.
    call = inspect.getattr_static(cls, "forward" if is_module else "__call__", None)
    if not inspect.isfunction(call):
        call = None  # decided per instance (a scripted module's forward), else not unpacked
    namespace = {
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
        "_pd_user_class": cls,
        "_pd_unpack": bool(call is not None and _takes_several(call) and _is_method_unpack(call)),
    }
    wrapped = types.new_class(cls.__name__, (mixin, cls), exec_body=lambda ns: ns.update(namespace))
    _WRAPPED[cls] = wrapped
    return wrapped


def _new_wrapped(cls: type) -> Any:
    """An empty instance of the wrapped ``cls`` (unpickling fills in its state)."""
    wrapped = _wrap_class(cls)
    return object.__new__(wrapped)


def _is_method_unpack(method: Callable[..., Any]) -> bool:
    """``_takes_several`` for a method taken from its class: its first parameter (``self``) is not
    one the input fills."""
    try:
        parameters = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):
        return False
    if parameters and parameters[0].name == "self":
        parameters = parameters[1:]
    count = _positional_count(parameters)
    return count is None or count > 1


def _wrap_instance(obj: Any, depth: int) -> Transform:
    """A shallow copy of ``obj`` whose class is the wrapped class (state such as weights is shared).

    It records where it was made: the file, line and globals of the frame ``depth`` levels above
    the caller, and, when that frame is a function's, a snapshot of its local variables (the
    capture finds the statement that created ``obj`` there: ``model = Net(h)`` in a function)."""
    wrapped_class = _wrap_class(type(obj))
    instance = copy.copy(obj)  # a scripted module's copy shares its C++ module's parameters
    instance.__class__ = wrapped_class
    try:
        frame = sys._getframe(depth + 1)
    except ValueError:  # pragma: no cover - called from the top of the stack
        site: dict[str, Any] = {"_pd_location": ("<unknown>", 0), "_pd_globals": None}
    else:
        site = {
            "_pd_location": (frame.f_code.co_filename, frame.f_lineno),
            "_pd_globals": frame.f_globals,
            "_pd_instruction": (frame.f_code, frame.f_lasti),
        }
        if frame.f_code.co_flags & inspect.CO_NEWLOCALS:  # a function's frame, not a module's
            site["_pd_locals"] = dict(frame.f_locals)
    instance.__dict__.update(site, _pd_wrapped=obj)
    if isinstance(obj, torch.jit.ScriptModule):
        # Every scripted module has the class RecursiveScriptModule: its own forward decides.
        instance.__dict__["_pd_unpack"] = _takes_several(obj.forward)
    return instance  # type: ignore[no-any-return]


class ModuleProxy:
    """``transform(module)``: attribute access returns transforms (``np.cos``, ``nn.Linear(3, 4)``)."""

    def __init__(self, module: types.ModuleType) -> None:
        self._pd_module = module

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._pd_module, name)
        if isinstance(value, types.ModuleType):
            return ModuleProxy(value)
        if isinstance(value, type):
            return _wrap_class(value)
        if callable(value):
            filename, line, scope = creation_site(1)
            return FunctionTransform(value, (filename, line, scope))
        return value

    def __repr__(self) -> str:
        return f"transform({self._pd_module.__name__})"


_FUNCTION_TYPES = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.BuiltinMethodType,
    types.MethodDescriptorType,  # str.upper, torch.Tensor.float
    types.WrapperDescriptorType,  # int.__add__
    types.MethodWrapperType,  # (1).__add__
    types.ClassMethodDescriptorType,
    functools.partial,
)


def _wraps_as_instance(obj: Any) -> bool:
    """Whether a callable object can become an instance of a transform subclass of its class:
    its class must allow subclasses and the object must have a ``__dict__`` (``operator.itemgetter``
    and other C callables cannot; they are wrapped like functions)."""
    subclassable = bool(type(obj).__flags__ & (1 << 10))  # Py_TPFLAGS_BASETYPE
    return subclassable and hasattr(obj, "__dict__")


_T = TypeVar("_T")
_TransformT = TypeVar("_TransformT", bound=Transform)


@overload
def transform(obj: types.ModuleType) -> ModuleProxy: ...
@overload
def transform(obj: _TransformT) -> _TransformT: ...
@overload
def transform(obj: type[_T]) -> type[_T]: ...  # type: ignore[overload-overlap]  # first match wins
@overload
def transform(obj: Callable[..., Any]) -> Transform: ...
def transform(obj: Any) -> Any:
    """Make ``obj`` a transform.

    - a function or lambda → a :class:`FunctionTransform` (``@transform`` works as a decorator);
    - a class → a subclass whose instances are transforms (``nn.Module`` subclasses stay modules);
    - an instance with ``__call__`` (including a built ``nn.Module``) → a transform sharing its state;
    - a Python module → a proxy whose attributes are transforms (``transform(torch.nn).Linear(3, 4)``).

    >>> from padlc import transform
    >>> @transform
    ... def plus_one(x):
    ...     return x + 1
    >>> (plus_one >> plus_one)(1)
    3
    """
    return wrap(obj, 1)


def wrap(obj: Any, depth: int) -> Any:
    """:func:`transform` of ``obj`` created by the frame ``depth`` levels above the caller (an
    operator such as ``>>`` wrapping an operand records the user's line, not its own)."""
    if isinstance(obj, Transform):
        return obj
    if isinstance(obj, types.ModuleType):
        return ModuleProxy(obj)
    if isinstance(obj, type):
        return _wrap_class(obj)
    if isinstance(obj, _FUNCTION_TYPES) or type(obj).__module__ == "numpy":
        return FunctionTransform(obj, creation_site(depth + 1))  # functions, builtins, ufuncs
    if callable(obj):
        if not _wraps_as_instance(obj):
            return FunctionTransform(obj, creation_site(depth + 1))
        return _wrap_instance(obj, depth + 1)
    raise TypeError(
        f"transform() needs a function, class, callable object or module; got {obj!r} "
        f"(a {type(obj).__name__}), which is not callable."
    )
