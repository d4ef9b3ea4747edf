"""The generated module's namespace: the names it binds and the imports it needs.

:class:`RendererBase` hands out unique legal names (``claim``), collects definitions and imports;
the concept modules add rendering on top of it: :mod:`values` (data and data files),
:mod:`definitions` (the user's functions and classes, copied from source) and :mod:`expressions`
(padlc transforms, layers and instance state). :class:`padlc.capture.render.Renderer` joins them.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import keyword
import re
import sys
import types
from pathlib import Path
from typing import Any

import torch

from padlc.capture import installed
from padlc.capture.shared import SharedData
from padlc.errors import SaveError
from padlc.language.atomic import ModuleProxy
from padlc.language.base import Transform, place
from padlc.language.markers import Batchify, Identity, Unbatchify

__all__ = ["ADD", "ATOM", "DIV", "SHIFT", "UNARY", "RendererBase"]

ATOM, UNARY, DIV, ADD, SHIFT = 5, 4, 3, 2, 1

_SCALARS = (int, float, complex, str, bytes, bool, type(None))


def _describe(t: Transform) -> str:
    location = t.__dict__.get("_pd_location")
    where = f" (created at {place(*location)})" if location else ""
    try:
        text = t._pd_short_repr()
    except Exception:
        text = type(t).__name__
    return f"`{text}`{where}"


def _identifier(hint: str) -> str:
    text = re.sub(r"\W", "_", hint) or "value"
    if text[0].isdigit():
        text = "_" + text
    return text + "_" if keyword.iskeyword(text) else text


class RendererBase:
    """Names, definitions and imports of one generated module.

    ``plain=False`` renders the lineage module (padlc language objects); ``plain=True`` renders plain
    Python for a build's stage module (no padlc import, no ``@transform``).
    """

    def __init__(
        self, root: Path, *, plain: bool, data_dir: str, scopes: list[dict[str, Any]]
    ) -> None:
        self.root = root
        self.plain = plain
        self.data_dir = data_dir
        self.scopes = scopes
        self.imports: set[str] = set()
        self.import_modules: set[str] = set()
        self.definitions: list[str] = []
        self.names: dict[str, Any] = {}
        self.name_of: dict[int, str] = {}
        self.keep: list[Any] = []  # objects whose ids are keys of name_of stay alive
        self.data_files: set[str] = set()
        #: Set by a build: data files identical to ones another module of the artifact wrote are
        #: stored once (see padlc.capture.shared).
        self.shared: SharedData | None = None
        self.layers: list[torch.nn.Module] = []
        self.hoist: set[int] = set()
        self.functions: dict[int, tuple[str, bool]] = {}
        self.factories: dict[str, str] = {}
        self.where: list[str] = []
        self.binding: set[int] = set()
        self.varnames: dict[int, str] = {}
        self.transforms: list[Transform] = []  # the pipeline's transforms (for `t - 'name'`)
        for scope in scopes:
            for key, value in list(scope.items()):
                if (
                    not key.startswith("_")
                    and type(value) not in _SCALARS
                    and not isinstance(value, types.ModuleType | Identity | Batchify | Unbatchify)
                ):
                    self.varnames.setdefault(id(value), key)
        for name in ("_pd_main", "_pd_extra_layers", "_pd_layers", "_pd_hooks"):
            self.names[name] = None

    # -- names -----------------------------------------------------------------------------
    def claim(self, preferred: str, obj: Any) -> str:
        base = _identifier(preferred)
        name, i = base, 1
        while name in self.names or (name in vars(builtins) and name != base):
            name, i = f"{base}_{i}", i + 1
        self.names[name] = obj
        self.name_of[id(obj)] = name
        self.keep.append(obj)
        return name

    def define(self, text: str) -> None:
        self.definitions.append(text.rstrip() + "\n")

    def error(self, message: str) -> SaveError:
        where = f" It is used by {self.where[-1]}." if self.where else ""
        return SaveError(message + where)

    # -- imports ---------------------------------------------------------------------------
    def import_module(self, module: types.ModuleType, preferred: str | None = None) -> str:
        if id(module) in self.name_of:
            return self.name_of[id(module)]
        name = module.__name__
        if self.plain and name.partition(".")[0] == "padlc":
            raise self.error("The plain stage code cannot import padlc.")
        if not installed.is_installed_module(name):
            raise self.error(
                f"Module {name!r} is part of your project (not installed), so it cannot be imported "
                "by the saved code. Use its functions and classes directly in transforms (their "
                "source is then copied in), or install the project as a package."
            )
        alias = self.claim(preferred or name.rpartition(".")[2], module)
        parent, _, last = name.rpartition(".")
        if not parent:
            self.imports.add(f"import {name}" + (f" as {alias}" if alias != name else ""))
        else:
            self.imports.add(
                f"from {parent} import {last}" + (f" as {alias}" if alias != last else "")
            )
        self.import_modules.add(name)
        return alias

    def module_expr(self, module: types.ModuleType) -> str:
        """``torch.nn`` as ``torch.nn`` (importing ``torch``), not under a new short name."""
        if id(module) in self.name_of:
            return self.name_of[id(module)]
        top, _, rest = module.__name__.partition(".")
        package = sys.modules.get(top)
        found: Any = package
        for part in rest.split(".") if rest else ():
            found = getattr(found, part, None)
        if package is not None and found is module:
            head = self.import_module(package)
            return f"{head}.{rest}" if rest else head
        return self.import_module(module)

    def import_object(self, obj: Any, preferred: str | None = None) -> str | None:
        """An expression for an installed object (``np.cos``, ``Linear``, ``len``), or None."""
        if id(obj) in self.name_of:
            return self.name_of[id(obj)]
        path = installed.import_path(obj)
        if path is None:
            return None
        module, qualname = path
        head = qualname.partition(".")[0]
        if module == "builtins" and (
            head not in self.names or self.names[head] is getattr(builtins, head, None)
        ):
            return qualname  # `len`, `str.upper`
        if self.plain and module.partition(".")[0] == "padlc":
            raise self.error(
                f"{qualname} comes from padlc, which the plain stage code cannot import."
            )
        if preferred is None:
            for scope in self.scopes:  # the user's own spelling: `np.cos`, `F.relu`
                for key, value in scope.items():
                    if (
                        isinstance(value, types.ModuleType)
                        and value.__name__ == module
                        and not key.startswith("_")
                    ):
                        return f"{self.import_module(value, key)}.{qualname}"
        if "." in qualname:
            return f"{self.import_module(importlib.import_module(module))}.{qualname}"
        name = self.claim(preferred or qualname, obj)
        self.imports.add(
            f"from {module} import {qualname}" + (f" as {name}" if name != qualname else "")
        )
        self.import_modules.add(module)
        return name

    def runtime(self, name: str) -> str:
        from padl_runtime import values

        expr = self.import_object(getattr(values, name))
        assert expr is not None
        return expr

    def padlc_name(self, name: str) -> str:
        """``name`` imported from padlc (the lineage module rebuilds padlc language objects)."""
        import padlc

        obj = getattr(padlc, name)
        if id(obj) in self.name_of:
            return self.name_of[id(obj)]
        if self.plain:
            raise self.error(f"The plain stage code cannot use padlc's {name}.")
        alias = self.claim(name, obj)
        self.imports.add(f"from padlc import {name}" + (f" as {alias}" if alias != name else ""))
        self.import_modules.add("padlc")
        return alias

    # -- provided by the concept mixins of Renderer -------------------------------------------
    def value(self, obj: Any, hint: str = "value") -> str:
        raise NotImplementedError

    def bind_global(self, name: str, obj: Any) -> str:
        raise NotImplementedError

    def is_user_code(self, obj: Any) -> bool:
        raise NotImplementedError

    def user_callable(self, obj: Any, hint: str) -> str:
        raise NotImplementedError

    def user_function(self, fn: types.FunctionType, hint: str | None = None) -> tuple[str, bool]:
        raise NotImplementedError

    def user_class(self, cls: type, hint: str | None = None, wrapped: type | None = None) -> str:
        raise NotImplementedError

    def resolve_names(
        self,
        text: str,
        names: list[str],
        scope: dict[str, Any],
        closure: dict[str, Any],
        skip: set[str],
        what: str,
    ) -> str:
        raise NotImplementedError

    def _decorators(self, node: ast.AST, scope: dict[str, Any]) -> list[ast.expr]:
        raise NotImplementedError

    def transform_name(self, t: Transform, name: str) -> str:
        raise NotImplementedError

    def transform_ref(self, t: Transform, hint: str = "t") -> str:
        raise NotImplementedError

    def layer(self, module: torch.nn.Module, hint: str) -> str:
        raise NotImplementedError

    def _module_proxy(self, proxy: ModuleProxy, hint: str) -> str:
        raise NotImplementedError
