"""Imports of the generated module: installed modules and objects, ``padl_runtime`` and ``padlc``.

Code of installed distributions is imported, never copied (the artifact's requirements pin them);
code of the user's project is copied in by :mod:`padlc.capture.definitions` instead.
"""

from __future__ import annotations

import builtins
import importlib
import sys
import types
from typing import Any

from padlc.capture import installed
from padlc.capture.module import GeneratedModule

__all__ = ["Imports"]


class Imports:
    """Binds installed modules and objects to names of the generated module."""

    def __init__(self, module: GeneratedModule) -> None:
        self.module = module

    def module_alias(self, module: types.ModuleType, preferred: str | None = None) -> str:
        """``import module [as preferred]``; the name it is bound to."""
        m = self.module
        found = m.name_of(module)
        if found is not None:
            return found
        name = module.__name__
        if m.plain and name.partition(".")[0] == "padlc":
            raise m.error("The plain stage code cannot import padlc.")
        if not installed.is_installed_module(name):
            raise m.error(
                f"Module {name!r} is part of your project (not installed), so it cannot be imported "
                "by the saved code. Use its functions and classes directly in transforms (their "
                "source is then copied in), or install the project as a package."
            )
        alias = m.claim(preferred or name.rpartition(".")[2], module)
        parent, _, last = name.rpartition(".")
        if not parent:
            m.imports.add(f"import {name}" + (f" as {alias}" if alias != name else ""))
        else:
            m.imports.add(
                f"from {parent} import {last}" + (f" as {alias}" if alias != last else "")
            )
        m.import_modules.add(name)
        return alias

    def module_expr(self, module: types.ModuleType) -> str:
        """``torch.nn`` as ``torch.nn`` (importing ``torch``), not under a new short name."""
        found_name = self.module.name_of(module)
        if found_name is not None:
            return found_name
        top, _, rest = module.__name__.partition(".")
        package = sys.modules.get(top)
        found: Any = package
        for part in rest.split(".") if rest else ():
            found = getattr(found, part, None)
        if package is not None and found is module:
            head = self.module_alias(package)
            return f"{head}.{rest}" if rest else head
        return self.module_alias(module)

    def object_expr(self, obj: Any, preferred: str | None = None) -> str | None:
        """An expression for an installed object (``np.cos``, ``Linear``, ``len``), or None."""
        m = self.module
        found = m.name_of(obj)
        if found is not None:
            return found
        path = installed.import_path(obj)
        if path is None:
            return None
        module, qualname = path
        head = qualname.partition(".")[0]
        if module == "builtins" and (
            head not in m.names or m.names.object_of(head) is getattr(builtins, head, None)
        ):
            return qualname  # `len`, `str.upper`
        if m.plain and module.partition(".")[0] == "padlc":
            raise m.error(f"{qualname} comes from padlc, which the plain stage code cannot import.")
        if preferred is None:
            for scope in m.scopes:  # the user's own spelling: `np.cos`, `F.relu`
                for key, value in scope.items():
                    if (
                        isinstance(value, types.ModuleType)
                        and value.__name__ == module
                        and not key.startswith("_")
                    ):
                        return f"{self.module_alias(value, key)}.{qualname}"
        if "." in qualname:
            return f"{self.module_alias(importlib.import_module(module))}.{qualname}"
        name = m.claim(preferred or qualname, obj)
        m.imports.add(
            f"from {module} import {qualname}" + (f" as {name}" if name != qualname else "")
        )
        m.import_modules.add(module)
        return name

    def runtime(self, name: str) -> str:
        """``padl_runtime.values``'s function ``name`` (loading data files)."""
        from padl_runtime import values

        expr = self.object_expr(getattr(values, name))
        assert expr is not None
        return expr

    def padlc_name(self, name: str) -> str:
        """``name`` imported from padlc (the lineage module rebuilds padlc language objects)."""
        import padlc

        m = self.module
        obj = getattr(padlc, name)
        found = m.name_of(obj)
        if found is not None:
            return found
        if m.plain:
            raise m.error(f"The plain stage code cannot use padlc's {name}.")
        alias = m.claim(name, obj)
        m.imports.add(f"from padlc import {name}" + (f" as {alias}" if alias != name else ""))
        m.import_modules.add("padlc")
        return alias
