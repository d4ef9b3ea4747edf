"""Rendering objects as Python source: the :class:`Renderer` behind :func:`padlc.capture.capture_pipeline`.

Objects are captured by identity and current value at save time: each object the pipeline reaches
becomes an expression or a named definition of the generated module. User code (scripts, notebook
cells, local modules) is copied in; installed code is imported; data that source cannot rebuild is
written beside the module as JSON, ``.npy`` or safetensors.
"""

from __future__ import annotations

import ast
import builtins
import enum
import functools
import importlib
import io
import json
import keyword
import re
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import torch

from padlc.capture import installed, markers, source, state
from padlc.errors import SaveError
from padlc.language.atomic import ClassTransform, FunctionTransform, ModuleProxy, _user_class
from padlc.language.base import Transform
from padlc.language.combinators import Compose, Map, Parallel, Pipeline, Rollout
from padlc.language.markers import Batchify, Identity, Unbatchify
from padlc.language.modes import IfInMode, Try
from padlc.language.same import Same, _format_key

__all__ = ["Renderer"]

ATOM, UNARY, DIV, ADD, SHIFT = 5, 4, 3, 2, 1
_SCALARS = (int, float, complex, str, bytes, bool, type(None))
SMALL_ELEMENTS = 100
SMALL_REPR = 1000
_OPERATORS = {Compose: (">>", SHIFT), Rollout: ("+", ADD), Parallel: ("/", DIV)}
_MODE_SWITCH = {"train": "IfTrain", "eval": "IfEval", "infer": "IfInfer"}
_UNCAPTURABLE_HINTS = (
    (io.IOBase, "an open file: open it inside the transform, or load its content into a value"),
    (
        types.GeneratorType,
        "a generator: make the data a list, or create the generator inside the function",
    ),
)


def _describe(t: Transform) -> str:
    location = t.__dict__.get("_pd_location")
    where = f" (created at {location[0]}:{location[1]})" if location else ""
    try:
        text = t._pd_short_repr()
    except Exception:
        text = type(t).__name__
    return f"`{text}`{where}"


def _literal(value: Any) -> bool:
    try:
        return bool(ast.literal_eval(repr(value)) == value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def _count(value: Any) -> int:
    if isinstance(value, dict):
        return len(value) + sum(_count(k) + _count(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return len(value) + sum(_count(v) for v in value)
    return 0


def _exact_json(value: Any) -> bool:
    try:
        return bool(json.loads(json.dumps(value)) == value) and _json_types(value)
    except (TypeError, ValueError):
        return False


def _json_types(value: Any) -> bool:
    if isinstance(value, bool) or value is None or type(value) in (int, float, str):
        return True
    if isinstance(value, list) and not isinstance(value, tuple):
        return all(_json_types(v) for v in value)
    if isinstance(value, dict):
        return all(type(k) is str and _json_types(v) for k, v in value.items())
    return False


def _identifier(hint: str) -> str:
    text = re.sub(r"\W", "_", hint) or "value"
    if text[0].isdigit():
        text = "_" + text
    return text + "_" if keyword.iskeyword(text) else text


class Renderer:
    """Renders objects into one generated module.

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
        if module == "builtins" and "." not in qualname:
            if qualname not in self.names or self.names[qualname] is obj:
                return qualname
        if self.plain and module.partition(".")[0] == "padlc":
            raise self.error(
                f"{qualname} comes from padlc, which the plain stage code cannot import."
            )
        if preferred is None:
            for scope in self.scopes:  # the user's own spelling: `np.cos`, `F.relu`
                for key, value in scope.items():
                    if isinstance(value, types.ModuleType) and value.__name__ == module:
                        if not key.startswith("_"):
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

    # -- globals ---------------------------------------------------------------------------
    def bind_global(self, name: str, obj: Any) -> str:
        """Make the generated module bind a name (``name`` when free) to ``obj``; returns it."""
        scalar = type(obj) in (int, float, complex, str, bytes, bool, type(None))
        if not scalar and id(obj) in self.name_of:
            return self.name_of[id(obj)]
        if (
            scalar
            and name in self.names
            and type(self.names[name]) is type(obj)
            and self.names[name] == obj
        ):
            return name
        if isinstance(obj, types.ModuleType):
            return self.import_module(obj, name)
        if isinstance(obj, Transform):
            return self.transform_name(obj, name)
        if (
            callable(obj)
            and not isinstance(obj, torch.nn.Module)
            and not isinstance(obj, ModuleProxy)
        ):
            if self.is_user_code(obj):
                return self.user_callable(obj, name)
            expr = self.import_object(obj, name)
            if expr is not None:
                return expr
        self.binding.add(id(obj))
        try:
            expr = self.value(obj, name)
        finally:
            self.binding.discard(id(obj))
        if id(obj) in self.name_of and not scalar:
            return self.name_of[id(obj)]
        bound = self.claim(name, obj)
        self.define(f"{bound} = {expr}")
        return bound

    def is_user_code(self, obj: Any) -> bool:
        if isinstance(obj, types.FunctionType):
            return not installed.is_installed_module(obj.__module__ or "__main__")
        if isinstance(obj, type):
            return not installed.is_installed_module(obj.__module__)
        return False

    def resolve_names(
        self,
        text: str,
        names: list[str],
        scope: dict[str, Any],
        closure: dict[str, Any],
        skip: set[str],
        what: str,
    ) -> str:
        """Bind every global name ``text`` reads and rename where the generated module had to
        choose another name."""
        renames: dict[str, str] = {}
        optional = source.annotation_names(ast.parse(text))
        for name in names:
            if name in closure or name in skip:
                continue
            if name in scope:
                obj = scope[name]
            elif name in vars(builtins) or name in optional:
                continue
            else:
                raise self.error(
                    f"{what} uses the name {name!r}, which is not defined in its module any more "
                    "(deleted, or bound only inside a function). Define it at module level."
                )
            bound = self.bind_global(name, obj)
            if bound != name:
                renames[name] = bound
        return source.rename(text, renames)

    # -- user functions --------------------------------------------------------------------
    def _decorators(self, node: ast.AST, scope: dict[str, Any]) -> list[ast.expr]:
        from padlc.language.atomic import transform

        found = []
        for decorator in getattr(node, "decorator_list", []):
            target: Any = None
            try:
                target = eval(
                    compile(ast.Expression(decorator), "<decorator>", "eval"), dict(scope)
                )
            except Exception:
                target = None
            if target is transform:
                found.append(decorator)
        return found

    def user_callable(self, obj: Any, hint: str) -> str:
        if isinstance(obj, type):
            return self.user_class(obj, hint)
        expr, _decorated = self.user_function(obj, hint)
        return expr

    def user_function(self, fn: types.FunctionType, hint: str | None = None) -> tuple[str, bool]:
        """An expression for ``fn`` (a def name, a lambda, a factory call) and whether it is
        already a transform (``@transform`` kept in the lineage module)."""
        if id(fn) in self.functions:
            return self.functions[id(fn)]
        snippet = source.function_snippet(fn)
        what = f"function {fn.__qualname__} ({snippet.filename}:{snippet.line})"
        code = fn.__code__
        scope = fn.__globals__
        closure: dict[str, Any] = {}
        for var, cell in zip(code.co_freevars, fn.__closure__ or ()):
            try:
                closure[var] = cell.cell_contents
            except ValueError as exc:
                raise self.error(f"{what} refers to {var!r} before it is assigned.") from exc
        is_lambda = isinstance(snippet.node, ast.Lambda)
        text = snippet.source
        transform_decorators = [] if is_lambda else self._decorators(snippet.node, scope)
        decorated = bool(transform_decorators) and not self.plain
        if self.plain and transform_decorators:
            text = source.strip_decorators(snippet, transform_decorators)
        text, defaults = self._rewrite_defaults(text, fn, scope, closure)
        name: str | None = None
        if not is_lambda and not closure:
            name = self.claim(fn.__name__, fn)
            if decorated:
                owner = scope.get(fn.__name__)
                if isinstance(owner, FunctionTransform) and owner.function is fn:
                    self.name_of[id(owner)] = name
                    self.keep.append(owner)
            self.functions[id(fn)] = (name, decorated)
        self.where.append(what)
        try:
            text = self.resolve_names(
                text, source.global_names(text), scope, closure, set(defaults), what
            )
            for placeholder, rendered in defaults.items():
                text = text.replace(placeholder, rendered)
            if name is not None and name != fn.__name__:
                text = source.rename(text, {fn.__name__: name})
            if closure:
                result = self._factory(fn, text, closure, is_lambda, hint), decorated
            elif is_lambda:
                result = text, False
            else:
                self.define(text)
                result = name or fn.__name__, decorated
        finally:
            self.where.pop()
        self.functions[id(fn)] = result
        return result

    def _rewrite_defaults(
        self, text: str, fn: types.FunctionType, scope: dict[str, Any], closure: dict[str, Any]
    ) -> tuple[str, dict[str, str]]:
        """Replace default-argument expressions by the defaults' current values (a default such
        as ``i=i`` in a comprehension refers to a name that no longer exists)."""
        tree = ast.parse(text)
        node = tree.body[0]
        if isinstance(node, ast.Expr):
            node = node.value  # type: ignore[assignment]
        args: ast.arguments = node.args  # type: ignore[attr-defined]
        positional = args.posonlyargs + args.args
        values = fn.__defaults__ or ()
        pairs: list[tuple[ast.expr, str, Any]] = []
        for arg, default_node, default in zip(
            positional[len(positional) - len(values) :], args.defaults, values
        ):
            pairs.append((default_node, arg.arg, default))
        kw = fn.__kwdefaults__ or {}
        for arg, default_node in zip(args.kwonlyargs, args.kw_defaults):
            if default_node is not None and arg.arg in kw:
                pairs.append((default_node, arg.arg, kw[arg.arg]))
        edits: list[tuple[ast.AST, str]] = []
        rendered: dict[str, str] = {}
        for i, (default_node, arg_name, default) in enumerate(pairs):
            if (
                isinstance(default_node, ast.Constant)
                and type(default_node.value) is type(default)
                and default_node.value == default
            ):
                continue
            if (
                isinstance(default_node, ast.Name)
                and type(default) not in _SCALARS  # small ints are shared: identity proves nothing
                and default_node.id not in closure
                and scope.get(default_node.id, self) is default
            ):
                continue  # a global name: resolved (and kept) like any other global
            placeholder = f"__pd_default_{i}__"
            rendered[placeholder] = self.value(default, arg_name)
            edits.append((default_node, placeholder))
        return source.replace_segments(text, edits), rendered

    def _factory(
        self,
        fn: types.FunctionType,
        text: str,
        closure: dict[str, Any],
        is_lambda: bool,
        hint: str | None,
    ) -> str:
        params = list(closure)
        key = text + "|" + ",".join(params)
        factory = self.factories.get(key)
        if factory is None:
            base = fn.__name__ if not is_lambda else (hint or "lambda")
            factory = self.claim(f"_make_{base}", key)
            self.factories[key] = factory
            body = f"return {text}" if is_lambda else f"{text}\nreturn {fn.__name__}"
            self.define(f"def {factory}({', '.join(params)}):\n{textwrap.indent(body, '    ')}")
        args = ", ".join(self.value(closure[p], p) for p in params)
        call = f"{factory}({args})"
        name = self.claim(hint or (fn.__name__ if not is_lambda else "f"), fn)
        self.define(f"{name} = {call}")
        return name

    def user_class(self, cls: type, hint: str | None = None, wrapped: type | None = None) -> str:
        if id(cls) in self.name_of:
            return self.name_of[id(cls)]
        snippet = source.class_snippet(cls)
        what = f"class {cls.__qualname__} ({snippet.filename}:{snippet.line})"
        scope = self._class_scope(cls)
        text = snippet.source
        transform_decorators = self._decorators(snippet.node, scope)
        if self.plain and transform_decorators:
            text = source.strip_decorators(snippet, transform_decorators)
        name = self.claim(cls.__name__, cls)
        if transform_decorators and not self.plain:
            del self.name_of[id(cls)]
            wrapped_class = scope.get(cls.__name__)
            if (
                isinstance(wrapped_class, type)
                and wrapped_class.__dict__.get("_pd_user_class") is cls
            ):
                self.name_of[id(wrapped_class)] = name
                self.keep.append(wrapped_class)
        self.where.append(what)
        try:
            text = self.resolve_names(text, source.global_names(text), scope, {}, set(), what)
        finally:
            self.where.pop()
        if name != cls.__name__:
            text = source.rename(text, {cls.__name__: name})
        self.define(text)
        return name

    def _class_scope(self, cls: type) -> dict[str, Any]:
        for attribute in vars(cls).values():
            fn = getattr(attribute, "__func__", attribute)
            scope = getattr(fn, "__globals__", None)
            if isinstance(scope, dict):
                return scope
        module = sys.modules.get(cls.__module__)
        return vars(module) if module is not None else {}

    # -- values ----------------------------------------------------------------------------
    def value(self, obj: Any, hint: str = "value") -> str:
        """An expression that rebuilds ``obj`` with its current value."""
        name = markers.param_name(obj)
        if name is not None:
            if id(obj) in self.name_of:
                return self.name_of[id(obj)]
            default = self.value(markers.plain(obj), hint)
            if self.plain:
                return default
            return f"{self.padlc_name('param')}({name!r}, {default})"
        kind = type(obj)
        if obj is None or kind in (bool, int, str, bytes, complex):
            return repr(obj)
        if kind is float:
            return (
                repr(obj)
                if obj == obj and obj not in (float("inf"), float("-inf"))
                else f"float({str(obj)!r})"
            )
        if id(obj) in self.name_of:
            return self.name_of[id(obj)]
        varname = self.varnames.get(id(obj))
        if varname is not None and id(obj) not in self.binding and not isinstance(obj, Transform):
            return self.bind_global(varname, obj)  # the user's variable: `Lookup(LABELS)`
        if markers.is_forced(obj):
            return self._data_file(markers.plain(obj), hint, forced=True)
        if kind in (list, tuple, dict, set, frozenset):
            return self._container(obj, hint)
        if isinstance(obj, types.ModuleType):
            return self.import_module(obj)
        if isinstance(obj, Transform):
            return self.transform_ref(obj, hint)
        if isinstance(obj, ModuleProxy):
            return self._module_proxy(obj, hint)
        if isinstance(obj, torch.Tensor):
            return self._tensor(obj, hint)
        if isinstance(obj, torch.nn.Module):
            return self.layer(obj, hint)
        if isinstance(obj, torch.dtype | torch.device):
            return (
                f"{self.import_module(torch)}.{repr(obj).removeprefix('torch.')}"
                if isinstance(obj, torch.dtype)
                else f"{self.import_module(torch)}.device({str(obj)!r})"
            )
        if kind.__module__ == "numpy":
            return self._numpy(obj, hint)
        if isinstance(obj, enum.Enum):
            return f"{self.value(type(obj))}.{obj.name}"
        if isinstance(obj, functools.partial):
            args = [self.value(obj.func)] + [self.value(a) for a in obj.args]
            args += [f"{k}={self.value(v, k)}" for k, v in obj.keywords.items()]
            return f"{self.import_module(functools)}.partial({', '.join(args)})"
        if isinstance(obj, types.MethodType) and not isinstance(
            obj.__self__, type | types.ModuleType
        ):
            return f"{self.value(obj.__self__)}.{obj.__func__.__name__}"
        if (
            isinstance(
                obj, type | types.FunctionType | types.BuiltinFunctionType | types.MethodType
            )
            or kind.__name__ == "ufunc"
        ):
            if self.is_user_code(obj):
                return self.user_callable(obj, hint)
            expr = self.import_object(obj)
            if expr is not None:
                return expr
        raise self._uncapturable(obj)

    def _uncapturable(self, obj: Any) -> SaveError:
        kind = type(obj).__name__
        for types_, hint in _UNCAPTURABLE_HINTS:
            if isinstance(obj, types_):
                return self.error(f"Cannot save {obj!r}: it is {hint}.")
        return self.error(
            f"Cannot save {obj!r} (a {kind}): padlc saves code, data (dicts, lists, numbers, "
            "strings, numpy arrays, tensors), torch layers and instances of transform classes. "
            f"Wrap data in `value(...)`, make {kind} a transform class (`@transform class {kind}` "
            "records its constructor arguments), or give it `pre_save(self, path, i)` / "
            "`post_load(self, path, i)` methods."
        )

    def _container(self, obj: Any, hint: str) -> str:
        if _literal(obj):
            text = repr(obj)
            if _count(obj) <= SMALL_ELEMENTS and len(text) <= SMALL_REPR:
                return text
            if _exact_json(obj) or (isinstance(obj, dict) and self._pairs_json(obj)):
                return self._data_file(obj, hint, forced=False)
            return text
        kind = type(obj)
        if kind is dict:
            items = ", ".join(
                f"{self.value(k, hint)}: {self.value(v, hint)}" for k, v in obj.items()
            )
            return "{" + items + "}"
        parts = [self.value(v, hint) for v in obj]
        if kind is list:
            return "[" + ", ".join(parts) + "]"
        if kind is tuple:
            return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
        inner = "[" + ", ".join(parts) + "]"
        return f"{kind.__name__}({inner})"

    def _pairs_json(self, obj: dict[Any, Any]) -> bool:
        pairs = [[k, v] for k, v in obj.items()]
        return all(type(k) in (int, float, str, bool) or k is None for k in obj) and _exact_json(
            pairs
        )

    def _data_path(self, hint: str, suffix: str) -> str:
        base = _identifier(hint)
        name, i = base, 1
        while f"{self.data_dir}/{name}{suffix}" in self.data_files:
            name, i = f"{base}_{i}", i + 1
        relative = f"{self.data_dir}/{name}{suffix}"
        self.data_files.add(relative)
        (self.root / relative).parent.mkdir(parents=True, exist_ok=True)
        return relative

    def _data_file(self, obj: Any, hint: str, *, forced: bool) -> str:
        if isinstance(obj, torch.Tensor):
            return self._tensor(obj, hint)
        if type(obj).__module__ == "numpy":
            return self._numpy(obj, hint)
        if _exact_json(obj):
            relative = self._data_path(hint, ".json")
            (self.root / relative).write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
            expr = f"{self.runtime('load_json')}(__file__, {relative!r})"
        elif isinstance(obj, dict) and self._pairs_json(obj):
            relative = self._data_path(hint, ".json")
            pairs = [[k, v] for k, v in obj.items()]
            (self.root / relative).write_text(
                json.dumps(pairs, ensure_ascii=False), encoding="utf-8"
            )
            expr = f"{self.runtime('load_json_pairs')}(__file__, {relative!r})"
        elif isinstance(obj, tuple) and _exact_json(list(obj)):
            relative = self._data_path(hint, ".json")
            (self.root / relative).write_text(
                json.dumps(list(obj), ensure_ascii=False), encoding="utf-8"
            )
            expr = f"tuple({self.runtime('load_json')}(__file__, {relative!r}))"
        else:
            raise self.error(
                f"value() of {type(obj).__name__} {obj!r:.60} cannot be stored as JSON (keys must be "
                "str/int/float, items JSON values). Use plain lists/dicts, a numpy array or a tensor."
            )
        if forced and not self.plain:
            return f"{self.padlc_name('value')}({expr})"
        return expr

    def _numpy(self, obj: Any, hint: str) -> str:
        import numpy as np

        if isinstance(obj, np.generic):
            return f"{self.import_module(np, 'np')}.{type(obj).__name__}({obj.item()!r})"
        if isinstance(obj, np.dtype):
            return f"{self.import_module(np, 'np')}.dtype({obj.str!r})"
        if not isinstance(obj, np.ndarray):
            expr = self.import_object(obj)  # ufuncs and other numpy callables
            if expr is None:
                raise self._uncapturable(obj)
            return expr
        relative = self._data_path(hint, ".npy")
        self.import_modules.add("numpy")  # read by padl_runtime.values.load_npy
        try:
            np.save(self.root / relative, obj, allow_pickle=False)
        except ValueError as exc:
            raise self.error(
                f"The numpy array {hint!r} holds Python objects (dtype {obj.dtype}); it cannot be "
                "saved without pickle. Use a numeric or string dtype, or a list."
            ) from exc
        return f"{self.runtime('load_npy')}(__file__, {relative!r})"

    def _tensor(self, obj: torch.Tensor, hint: str) -> str:
        from safetensors.torch import save_file

        relative = self._data_path(hint, ".safetensors")
        self.import_modules.add("safetensors")
        save_file({"value": obj.detach().cpu().contiguous().clone()}, str(self.root / relative))
        expr = f"{self.runtime('load_tensor')}(__file__, {relative!r})"
        torch_name = self.import_module(torch)
        if isinstance(obj, torch.nn.Parameter):
            return f"{torch_name}.nn.Parameter({expr}, requires_grad={obj.requires_grad})"
        if obj.requires_grad:
            return f"{expr}.requires_grad_()"
        return expr

    def _module_proxy(self, proxy: ModuleProxy, hint: str) -> str:
        if id(proxy) in self.name_of:
            return self.name_of[id(proxy)]
        name = self.claim(self.varnames.get(id(proxy), hint), proxy)
        module = self.module_expr(proxy._pd_module)
        self.define(f"{name} = {self.padlc_name('transform')}({module})")
        return name

    # -- torch layers ----------------------------------------------------------------------
    def register_layer(self, layer: torch.nn.Module) -> None:
        if all(existing is not layer for existing in self.layers):
            self.layers.append(layer)

    def layer(self, module: torch.nn.Module, hint: str) -> str:
        """A plain ``nn.Module`` (not a transform): rebuilt from its attributes, weights saved."""
        if id(module) in self.name_of:
            return self.name_of[id(module)]
        expr = self.rebuild_module(module, type(module))
        name = self.claim(
            self.varnames.get(
                id(module), hint if hint != "value" else type(module).__name__.lower()
            ),
            module,
        )
        self.define(f"{name} = {expr}")
        self.register_layer(module)
        return name

    def rebuild_module(self, module: torch.nn.Module, cls: type) -> str:
        """``Cls(arg=...)`` from the attributes named like ``__init__``'s parameters, checked by
        building it and comparing ``repr`` and the state dict's keys, shapes and dtypes."""
        import inspect

        cls_expr = self.value(cls)
        if isinstance(module, torch.nn.Sequential | torch.nn.ModuleList) and type(module) is cls:
            children = [self.rebuild_module(c, _user_class(type(c))) for c in module.children()]
            inner = ", ".join(children)
            return (
                f"{cls_expr}({inner})" if cls is torch.nn.Sequential else f"{cls_expr}([{inner}])"
            )
        kwargs: dict[str, Any] = {}
        problem = ""
        try:
            parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
        except (TypeError, ValueError):
            parameters, problem = [], "its __init__ signature is unknown"
        for p in parameters:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            if p.name in vars(module) or hasattr(module, p.name):
                current = getattr(module, p.name)
                if isinstance(p.default, bool) and (
                    current is None or isinstance(current, torch.Tensor)
                ):
                    current = current is not None  # `bias=True` is stored as the bias tensor
                kwargs[p.name] = current
            elif p.default is p.empty:
                problem = f"its constructor argument {p.name!r} is not stored as an attribute"
                break
        if not problem:
            try:
                rebuilt = cls(**kwargs)
            except Exception as exc:
                problem = f"rebuilding it from its attributes failed ({type(exc).__name__}: {exc})"
            else:
                if repr(rebuilt) != repr(module):
                    problem = f"rebuilt from its attributes it prints as {rebuilt!r}"
                elif _shapes(rebuilt) != _shapes(module):
                    problem = (
                        "rebuilt from its attributes its weights have other names, shapes or dtypes"
                    )
        if problem:
            name = cls.__name__
            raise self.error(
                f"Cannot save the layer {name} made by `transform(instance)`: {problem}. Create it "
                f"through the wrapped class so its arguments are recorded, e.g. "
                f"`transform({cls.__module__}.{name})(...)` or `@transform class {name}`, or give "
                "it `pre_save(self, path, i)` / `post_load(self, path, i)` methods."
            )
        args = ", ".join(f"{k}={self.value(v, k)}" for k, v in kwargs.items())
        return f"{cls_expr}({args})"

    # -- transforms ------------------------------------------------------------------------
    def transform_name(self, t: Transform, name: str) -> str:
        """Bind transform ``t`` to a module-level name (preferring ``name``)."""
        if id(t) in self.name_of:
            return self.name_of[id(t)]
        expr, _ = self.transform_expr(t)
        if id(t) in self.name_of:  # a decorated def or class bound it
            return self.name_of[id(t)]
        if expr.isidentifier() and expr in self.names:  # the plain function itself
            self.name_of[id(t)] = expr
            self.keep.append(t)
            return expr
        bound = self.claim(name, t)
        self.define(f"{bound} = {expr}")
        return bound

    def transform_ref(self, t: Transform, hint: str = "t") -> str:
        text, _ = self.transform_operand(t, ATOM)
        return text

    def transform_operand(self, t: Transform, parent: int) -> tuple[str, int]:
        if id(t) in self.name_of:
            return self.name_of[id(t)], ATOM
        varname = self.varnames.get(id(t))
        if varname is not None or id(t) in self.hoist:
            return self.transform_name(t, varname or _hint(t)), ATOM
        text, precedence = self.transform_expr(t)
        if id(t) in self.name_of:
            return self.name_of[id(t)], ATOM
        if parent != ATOM and precedence <= parent:
            return f"({text})", ATOM
        return text, precedence

    def transform_expr(self, t: Transform) -> tuple[str, int]:
        name = t.__dict__.get("_pd_name")
        origin = self._renamed_from(t) if name is not None else None
        if origin is not None:  # `layer - 'name'`: a copy that shares the layer's state
            text = self.transform_operand(origin, ATOM)[0]
            return (text, ATOM) if self.plain else (f"{text} - {name!r}", ADD)
        self.where.append(_describe(t))
        try:
            text, precedence = self._transform_expr(t)
        finally:
            self.where.pop()
        if name is not None and not isinstance(t, Pipeline | Map) and not self.plain:
            if precedence <= ADD:
                text = f"({text})"
            return f"{text} - {name!r}", ADD
        return text, precedence

    def _transform_expr(self, t: Transform) -> tuple[str, int]:
        if isinstance(t, Pipeline):
            operator, precedence = _OPERATORS[type(t)]
            parts = [self.transform_operand(c, precedence)[0] for c in t._pd_transforms]
            text = f" {operator} ".join(parts)
            if t._pd_grouped:
                text, precedence = f"{self.padlc_name('group')}({text})", ATOM
            name = t.__dict__.get("_pd_name")
            if name is not None:
                if precedence <= ADD:
                    text = f"({text})"
                text, precedence = f"{text} - {name!r}", ADD
            return text, precedence
        if isinstance(t, Map):
            inner, _ = self.transform_operand(t._pd_transform, UNARY)
            text = f"~{inner}"
            name = t.__dict__.get("_pd_name")
            if name is not None:
                return f"({text}) - {name!r}", ADD
            return text, UNARY
        if isinstance(t, Identity | Batchify | Unbatchify):
            word = {Identity: "identity", Batchify: "batch", Unbatchify: "unbatch"}[type(t)]
            return self.padlc_name(word), ATOM
        if isinstance(t, Same):
            return self._same(t), ATOM
        if isinstance(t, IfInMode):
            from padlc.language.markers import identity

            args = [self.transform_ref(t.if_)]
            if t.else_ is not identity:
                args.append(f"else_={self.transform_ref(t.else_)}")
            return f"{self.padlc_name(_MODE_SWITCH[t.target_mode])}({', '.join(args)})", ATOM
        if isinstance(t, Try):
            parts = [self.transform_ref(t.transform), self.transform_ref(t.catch_transform)]
            parts.append(self.value(t.exceptions))
            parts += [
                f"else_transform={self.transform_ref(t.else_transform)}",
                f"finally_transform={self.transform_ref(t.finally_transform)}",
            ]
            return f"{self.padlc_name('Try')}({', '.join(parts)})", ATOM
        if isinstance(t, FunctionTransform):
            return self._function_transform(t), ATOM
        if isinstance(t, ClassTransform):
            return self._instance(t), ATOM
        raise self.error(f"padlc does not know how to save a {type(t).__name__}.")

    def _renamed_from(self, t: Transform) -> Transform | None:
        """The transform ``t`` was copied from by ``t - 'name'`` when it is bound to a variable or
        part of the pipeline: a class instance whose state is the very same objects (for a layer:
        the same parameters), so the saved code makes the copy the same way and shares them."""
        if not isinstance(t, ClassTransform):
            return None
        own = _copied_state(t)
        candidates = [*self.transforms, *(v for scope in self.scopes for v in scope.values())]
        for candidate in candidates:
            if candidate is t or type(candidate) is not type(t):
                continue
            theirs = _copied_state(candidate)
            if own.keys() == theirs.keys() and all(own[k] is theirs[k] for k in own):
                return candidate  # type: ignore[no-any-return]
        return None

    def _same(self, t: Same) -> str:
        text = self.padlc_name("same")
        for operation in t._pd_operations:
            if operation[0] == "attr":
                text += f".{operation[1]}"
            elif operation[0] == "item":
                key = operation[1]
                simple = all(
                    isinstance(k, int | slice | type(Ellipsis) | type(None)) or _literal(k)
                    for k in (key if isinstance(key, tuple) else (key,))
                )
                text += f"[{_format_key(key) if simple else self.value(key)}]"
            else:
                parts = [self.value(a) for a in operation[1]]
                parts += [f"{k}={self.value(v, k)}" for k, v in operation[2].items()]
                text += f"({', '.join(parts)})"
        return text

    def _stacked_def(self, t: FunctionTransform) -> str | None:
        """``@transform @other def f``: ``t.function`` is ``other``'s wrapper, so the def with all
        its decorators is what rebuilds ``t``; found at ``t``'s creation line."""
        location, scope = t.__dict__.get("_pd_location"), t.__dict__.get("_pd_globals")
        if not location or not isinstance(scope, dict):
            return None
        lines, tree = source._file_tree(location[0])
        if tree is None:
            return None
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and len(node.decorator_list) > 1
                and node.decorator_list[0].lineno <= location[1] <= node.lineno
                and scope.get(node.name) is t
            ):
                text = textwrap.dedent(
                    "".join(lines[node.decorator_list[0].lineno - 1 : node.end_lineno])
                )
                snippet = source.Snippet(text, ast.parse(text).body[0], location[0], location[1])
                drop = self._decorators(snippet.node, scope)
                if self.plain:
                    text = source.strip_decorators(snippet, drop)
                name = self.claim(node.name, t)
                what = f"function {node.name} ({location[0]}:{location[1]})"
                text = self.resolve_names(text, source.global_names(text), scope, {}, set(), what)
                if name != node.name:
                    text = source.rename(text, {node.name: name})
                self.define(text)
                return name
        return None

    def _function_transform(self, t: FunctionTransform) -> str:
        fn = t.function
        stacked = self._stacked_def(t) if self.is_user_code(fn) else None
        if stacked is not None:
            return stacked
        if isinstance(fn, types.FunctionType) and self.is_user_code(fn):
            expr, decorated = self.user_function(fn, self.varnames.get(id(t)))
            if decorated or self.plain:
                return expr
            return f"{self.padlc_name('transform')}({expr})"
        expr = self.value(fn)
        if self.plain:
            return expr
        return f"{self.padlc_name('transform')}({expr})"

    def _instance(self, t: ClassTransform) -> str:
        wrapped_class = type(t)
        user = _user_class(wrapped_class)
        init = t.__dict__.get("_pd_init")
        if init is None and "_pd_wrapped" in t.__dict__:
            if isinstance(t, torch.nn.Module):
                self.register_layer(t)
                plain_expr = self.rebuild_module(t, user)
                return plain_expr if self.plain else f"{self.padlc_name('transform')}({plain_expr})"
            raise self.error(
                f"Cannot save {_describe(t)}: it was made by `transform(instance)`, so its "
                f"constructor arguments are unknown. Wrap the class instead "
                f"(`transform({user.__name__})(...)` or `@transform class {user.__name__}`), or give "
                f"{user.__name__} `pre_save(self, path, i)` / `post_load(self, path, i)` methods."
            )
        if init is None:
            raise self.error(
                f"Cannot save {_describe(t)}: its constructor arguments were not recorded."
            )
        cls_expr = self._class_expr(wrapped_class, user)
        args, kwargs = init
        parts = [self.value(a, _hint_arg(user, i)) for i, a in enumerate(args)]
        parts += [f"{k}={self.value(v, k)}" for k, v in kwargs.items()]
        if isinstance(t, torch.nn.Module):
            self.register_layer(t)
        constructed = f"{cls_expr}({', '.join(parts)})"
        return self._restore_state(t, user, constructed)

    def _restore_state(self, t: ClassTransform, user: type, constructed: str) -> str:
        """``constructed`` when it rebuilds ``t`` as it is now; else a name bound to it followed by
        ``name.attr = value`` for each attribute set after construction (or a SaveError)."""
        args, kwargs = t.__dict__["_pd_init"]
        if self.is_user_code(user) or installed.import_path(user) is not None:
            check = state.changed_state(t, lambda: type(t)(*args, **kwargs))
        else:  # not the class the saved code rebuilds: every attribute counts as set later
            check = state.StateCheck(
                tuple(state.Changed(k, v) for k, v in vars(t).items() if not k.startswith("_pd_"))
            )
        if check.problem:
            raise self._state_error(t, user, check.problem)
        hooked = callable(getattr(t, "pre_save", None)) or callable(getattr(t, "post_load", None))
        assignments: list[tuple[str, str]] = []
        for change in check.changed:
            if change.value is t:
                continue
            if change.missing:
                if hooked:
                    continue
                raise self._state_error(
                    t,
                    user,
                    f"its attribute {change.path!r} was deleted after construction",
                    change.path,
                )
            hint = f"{self.varnames.get(id(t)) or _hint(t)}_{change.path.replace('.', '_')}"
            try:
                rendered = self.value(change.value, hint)
            except SaveError as exc:
                if hooked:
                    continue  # its pre_save/post_load hooks carry the state
                raise self._state_error(
                    t,
                    user,
                    f"its attribute {change.path!r} was changed after construction to "
                    f"{_short(change.value)} (a {type(change.value).__name__}), which padlc cannot "
                    "save by value",
                    change.path,
                ) from exc
            assignments.append((change.path, rendered))
        if not assignments:
            return constructed
        if t.__dict__.get("_pd_name") is None:
            name = self.claim(self.varnames.get(id(t)) or _hint(t), t)
        else:  # `- 'name'` is applied to the bound object by transform_expr
            anchor = object()
            name = self.claim(f"{self.varnames.get(id(t)) or _hint(t)}_base", anchor)
        lines = [f"{name} = {constructed}"]
        lines += [f"{name}.{path} = {rendered}" for path, rendered in assignments]
        self.define("\n".join(lines))
        return name

    def _state_error(
        self, t: ClassTransform, user: type, problem: str, attribute: str = ""
    ) -> SaveError:
        cls = user.__name__
        message = (
            f"Cannot save {_describe(t)}: {problem}. The saved code rebuilds it as "
            f"`{cls}(...)` from its constructor arguments, so this state would be lost. Set it "
            f"in `{cls}.__init__` (for a class you do not own, in the `__init__` of a transform "
            f"subclass), pass it as a constructor argument, or give {cls} "
            "`pre_save(self, path, i)` / `post_load(self, path, i)` methods that save and restore "
            "it."
        )
        if attribute and "." not in attribute:
            message += (
                f" For example:\n\n    @transform\n    class {cls}:\n"
                f"        def __init__(self, ..., {attribute}):\n"
                f"            self.{attribute} = {attribute}"
            )
        return SaveError(message)

    def _class_expr(self, wrapped_class: type, user: type) -> str:
        if self.plain:
            return self.value(user)
        if id(wrapped_class) in self.name_of:
            return self.name_of[id(wrapped_class)]
        if self.is_user_code(user):
            name = self.user_class(user)
            if id(wrapped_class) in self.name_of:
                return self.name_of[id(wrapped_class)]
            return f"{self.padlc_name('transform')}({name})"
        varname = self.varnames.get(id(wrapped_class))
        for scope in self.scopes:  # `nn = transform(torch.nn)` ... `nn.Linear(3, 4)`
            for key, value in scope.items():
                if (
                    isinstance(value, ModuleProxy)
                    and getattr(value._pd_module, user.__name__, None) is user
                ):
                    return f"{self._module_proxy(value, key)}.{user.__name__}"
        inner = self.value(user)
        if varname is not None:
            name = self.claim(varname, wrapped_class)
            self.define(f"{name} = {self.padlc_name('transform')}({inner})")
            return name
        return f"{self.padlc_name('transform')}({inner})"


def _hint(t: Transform) -> str:
    if isinstance(t, FunctionTransform):
        return getattr(t.function, "__name__", "f").replace("<lambda>", "f")
    if isinstance(t, ClassTransform):
        return _user_class(type(t)).__name__.lower()
    return type(t).__name__.lower()


def _copied_state(t: Transform) -> dict[str, Any]:
    skip = ("_pd_name", "_pd_stages_cache", "_pd_layers_cache")
    return {k: v for k, v in vars(t).items() if k not in skip}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _hint_arg(cls: type, index: int) -> str:
    import inspect

    try:
        names = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    except (TypeError, ValueError):
        return "value"
    return names[index] if index < len(names) else "value"


def _shapes(module: torch.nn.Module) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    return [(k, tuple(v.shape), v.dtype) for k, v in module.state_dict().items()]
