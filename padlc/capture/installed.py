"""Which code is installed (imported by the generated module) and which is the user's (copied in),
and the requirements pins of the installed code."""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import sysconfig
import types
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["distribution_pins", "import_path", "is_installed_module"]

# padlc and padl_runtime (the padl-runtime distribution): an editable install may lack the mapping.
_OWN = {"padlc": "padlc", "padl_runtime": "padl-runtime"}


@lru_cache(maxsize=1)
def _distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


@lru_cache(maxsize=1)
def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    keys = ("stdlib", "platstdlib", "purelib", "platlib")
    return tuple(str(Path(paths[k]).resolve()) for k in keys if k in paths)


def is_installed_module(name: str) -> bool:
    """Whether module ``name`` comes from the standard library or an installed distribution (so the
    generated code imports it); ``False`` for ``__main__`` and the user's own modules."""
    top = name.partition(".")[0]
    if name == "__main__" or not top:
        return False
    if top in sys.stdlib_module_names or top in sys.builtin_module_names or top in _OWN:
        return True
    if top in _distributions():
        return True
    module = sys.modules.get(name) or sys.modules.get(top)
    filename = getattr(module, "__file__", None)
    if module is None or filename is None:
        return False
    resolved = str(Path(filename).resolve())
    return any(resolved.startswith(d + "/") for d in _library_dirs())


def torch_tensor() -> type:
    import torch

    return torch.Tensor


def import_path(obj: Any) -> tuple[str, str] | None:
    """``(module, attribute)`` to import ``obj`` from an installed module, the shortest public
    module path that gives back the same object (``torch.nn.Linear``, not
    ``torch.nn.modules.linear.Linear``); ``None`` when it is not importable by name."""
    module_name = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    owner_class = getattr(obj, "__objclass__", None)  # a method descriptor: str.upper
    if isinstance(owner_class, type) and module_name is None:
        method = str(getattr(obj, "__name__", ""))
        if (
            owner_class.__module__.startswith("torch")
            and getattr(torch_tensor(), method, None) is obj
        ):
            return "torch", f"Tensor.{method}"  # torch.Tensor.float, not torch._C.TensorBase
        module_name = owner_class.__module__
    if isinstance(obj, types.BuiltinFunctionType) and getattr(obj, "__self__", None) is not None:
        owner = obj.__self__
        if isinstance(owner, types.ModuleType):
            module_name = owner.__name__
    if not isinstance(module_name, str) or not isinstance(name, str) or "<" in name:
        # numpy ufuncs have no __module__; they live in numpy
        if type(obj).__name__ == "ufunc":
            module_name, name = "numpy", obj.__name__
        else:
            return None
    if not is_installed_module(module_name):
        return None
    parts = module_name.split(".")
    candidates = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    # A builtin's qualified name can go through a private class its module never exposes
    # (torch.tensor is `_VariableFunctionsClass.tensor` in `torch`): its plain name is tried too.
    plain = getattr(obj, "__name__", None)
    names = [name] if plain in (None, name) or not isinstance(plain, str) else [name, plain]
    for candidate in candidates:
        if any(p.startswith("_") for p in candidate.split(".")[1:]) and candidate != module_name:
            continue
        try:
            module = importlib.import_module(candidate)
        except ImportError:
            continue
        for dotted in names:
            found: Any = module
            for attribute in dotted.split("."):
                found = getattr(found, attribute, None)
            if found is obj:
                return candidate, dotted
    return None


def distribution_pins(modules: set[str]) -> dict[str, str]:
    """``{distribution: version}`` for the third-party top-level ``modules`` (stdlib left out)."""
    pins: dict[str, str] = {}
    for module in sorted(modules):
        top = module.partition(".")[0]
        if top in sys.stdlib_module_names or top in sys.builtin_module_names:
            continue
        names = _distributions().get(top) or ([_OWN[top]] if top in _OWN else [])
        for dist in names:
            try:
                # The public version: a local label such as torch's "+cpu" names one build of
                # it and would make the pin uninstallable elsewhere (a GPU server, say).
                pins[dist] = importlib.metadata.version(dist).split("+")[0]
            except importlib.metadata.PackageNotFoundError:
                continue
    return dict(sorted(pins.items()))
