"""Instance state changed after construction: what a rebuild from the recorded arguments would lose.

A transform-class instance is saved as ``Cls(args)`` from the arguments recorded when it was made
(``_pd_init``). Attributes set later (``obj.attr = x``, ``obj.table[k] = v``, a counter bumped by
calls) would silently come back as ``__init__`` made them. At save time the instance is rebuilt
from the same arguments in the saving process and its state compared with the live object's;
:func:`changed_state` lists the differences, which the renderer writes as ``obj.attr = value``
after construction or refuses with a :class:`padlc.SaveError`.
"""

from __future__ import annotations

import contextlib
import random
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from padlc.capture import serializers
from padlc.language.atomic import user_class_of
from padlc.language.base import Transform

__all__ = ["Changed", "StateCheck", "changed_state", "isolated", "same_value"]

_MAX_DEPTH = 6
# Public attributes every nn.Module has and that the apply methods set themselves.
_MODULE_SKIP = frozenset({"training"})
_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
    "_load_state_dict_pre_hooks",
)


@dataclass(frozen=True)
class Changed:
    """Attribute ``path`` (``"table"``, ``"fc.scale"``) of the live object holds ``value``, which
    a rebuild from the recorded arguments does not give (``missing``: the attribute was deleted)."""

    path: str
    value: Any
    missing: bool = False


@dataclass(frozen=True)
class StateCheck:
    """The attributes to set after construction, or ``problem``: why no assignment can fix it."""

    changed: tuple[Changed, ...] = ()
    problem: str = ""


@contextlib.contextmanager
def isolated() -> Iterator[None]:
    """Run a constructor a second time without consuming the user's random streams or warning
    twice (the user saw its warnings when the object was made)."""
    python_state = random.getstate()
    numpy_state = None
    try:
        import numpy as np

        numpy_state = np.random.get_state()
    except ImportError:  # pragma: no cover - numpy is a dependency
        np = None  # type: ignore[assignment]
    try:
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        random.setstate(python_state)
        if np is not None and numpy_state is not None:
            np.random.set_state(numpy_state)


def _own_state(obj: Any) -> dict[str, Any]:
    state = getattr(obj, "__dict__", None)
    if not isinstance(state, dict):
        return {}
    return {k: v for k, v in state.items() if not k.startswith("_pd_")}


def changed_state(live: Any, rebuild: Callable[[], Any]) -> StateCheck:
    """Rebuild ``live`` with ``rebuild()`` (its class called with the recorded arguments, the
    statement that created it...) and compare the two instances' state. ``live`` may be padlc's
    wrapper of the object (``transform(instance)``): classes compare as the user's."""
    try:
        with isolated():
            fresh = rebuild()
    except Exception as exc:
        return StateCheck(
            problem=(
                f"rebuilding it from its recorded constructor arguments failed "
                f"({type(exc).__name__}: {exc}), so padlc cannot check that the saved code rebuilds "
                "it as it is now"
            )
        )
    if user_class_of(type(fresh)) is not user_class_of(type(live)):
        return StateCheck(
            problem=f"built again it is a {type(fresh).__name__}, not a {type(live).__name__}"
        )
    if isinstance(live, torch.nn.Module):
        return _module_changes(live, fresh)
    if not isinstance(getattr(live, "__dict__", None), dict):  # no attributes to set afterwards
        if same_value(live, fresh):
            return StateCheck()
        return StateCheck(problem="built again it does not hold the same value")
    return StateCheck(tuple(_attribute_changes(_own_state(live), _own_state(fresh), "")))


def _attribute_changes(live: dict[str, Any], fresh: dict[str, Any], prefix: str) -> list[Changed]:
    changes = []
    for key, current in live.items():
        if key not in fresh or not same_value(current, fresh[key]):
            changes.append(Changed(prefix + key, current))
    changes += [Changed(prefix + key, None, missing=True) for key in fresh if key not in live]
    return changes


def _module_changes(live: torch.nn.Module, fresh: Any) -> StateCheck:
    if not isinstance(fresh, torch.nn.Module):
        return StateCheck(problem="rebuilt from its recorded arguments it is not a torch module")
    live_modules = dict(live.named_modules(remove_duplicate=False))
    fresh_modules = dict(fresh.named_modules(remove_duplicate=False))
    structure = {k: user_class_of(type(v)) for k, v in live_modules.items()}
    if structure != {k: user_class_of(type(v)) for k, v in fresh_modules.items()}:
        return StateCheck(
            problem="its submodules were replaced, added or removed after construction"
        )
    if _shapes(live) != _shapes(fresh):
        return StateCheck(
            problem=(
                "its weights have other names, shapes or dtypes than when it was constructed "
                "(a parameter or buffer was replaced or added after construction)"
            )
        )
    changes: list[Changed] = []
    for name, module in live_modules.items():
        other = fresh_modules[name]
        for hooks in _HOOK_DICTS:
            if len(getattr(module, hooks, {})) > len(getattr(other, hooks, {})):
                where = f"its submodule {name!r}" if name else "it"
                return StateCheck(problem=f"{where} has hooks registered after construction")
        prefix = f"{name}." if name else ""
        public = _module_attributes(module)
        fresh_public = _module_attributes(other)
        changes += _attribute_changes(public, fresh_public, prefix)
        for buffer in sorted(getattr(module, "_non_persistent_buffers_set", ())):
            current = module._buffers.get(buffer)
            if not same_value(current, other._buffers.get(buffer)):
                changes.append(Changed(prefix + buffer, current))
    return StateCheck(tuple(changes))


def _module_attributes(module: torch.nn.Module) -> dict[str, Any]:
    """A module's public attributes, without a scripted module's compiled methods (``forward``,
    cached on the instance when first used: code, not state)."""
    return {
        k: v
        for k, v in _own_state(module).items()
        if not k.startswith("_")
        and k not in _MODULE_SKIP
        and not isinstance(v, torch._C.ScriptMethod)
    }


def _shapes(module: torch.nn.Module) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    return [(k, tuple(v.shape), v.dtype) for k, v in module.state_dict().items()]


def same_value(a: Any, b: Any, depth: int = 0) -> bool:
    """Whether ``a`` (live) and ``b`` (freshly built) hold the same value: identical objects,
    equal data, tensors and arrays with the same dtype, shape and elements, layers with the same
    structure (their weights are saved anyway), transforms that print the same."""
    if a is b:
        return True
    if type(a) is not type(b) or depth > _MAX_DEPTH:
        return False
    if isinstance(a, torch.Tensor):
        return _same_tensor(a, b)
    if type(a).__module__ == "numpy" and hasattr(a, "shape"):
        import numpy as np

        return bool(a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b))
    if isinstance(a, torch.nn.Module):
        return repr(a) == repr(b) and _shapes(a) == _shapes(b)
    if isinstance(a, Transform):
        return repr(a) == repr(b)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same_value(x, y, depth + 1) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_value(a[k], b[k], depth + 1) for k in a)
    entry = serializers.find(a)
    if entry is not None:  # compared by what padlc saves of it (a tokenizer has no __eq__)
        return serializers.same_saved_state(a, b, entry)
    if type(a).__eq__ is not object.__eq__:
        try:
            return bool(a == b)
        except Exception:
            return False
    return _same_state(a, b, depth)


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape or a.requires_grad != b.requires_grad:
        return False
    if a.device != b.device:
        return False
    return bool(torch.equal(a.detach(), b.detach()))


def _same_state(a: Any, b: Any, depth: int) -> bool:
    """Objects that compare by identity: equal when their pickled-state views are equal
    (``random.Random``, numpy generators, plain objects' ``__dict__``)."""
    getter = getattr(type(a), "__getstate__", None)
    try:
        state_a = a.__getstate__() if getter is not None else getattr(a, "__dict__", None)
        state_b = b.__getstate__() if getter is not None else getattr(b, "__dict__", None)
    except Exception:
        return False
    return same_value(state_a, state_b, depth + 1)
