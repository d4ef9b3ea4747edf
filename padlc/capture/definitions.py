"""Rendering the user's code: functions, lambdas, closures (as factories) and classes are copied
from their source, with every global name they read bound in the generated module."""

from __future__ import annotations

import ast
import builtins
import sys
import textwrap
import types
from typing import TYPE_CHECKING, Any

import torch

from padlc.capture import installed, source
from padlc.capture.module import SCALARS
from padlc.language.atomic import FunctionTransform, ModuleProxy
from padlc.language.base import Transform

if TYPE_CHECKING:
    from padlc.capture.render import Renderer

__all__ = ["Definitions", "is_user_code"]


def is_user_code(obj: Any) -> bool:
    """A function or class of the user's project (copied in), not of an installed package."""
    if isinstance(obj, types.FunctionType):
        return not installed.is_installed_module(obj.__module__ or "__main__")
    if isinstance(obj, type):
        return not installed.is_installed_module(obj.__module__)
    return False


class Definitions:
    """Global names, user functions (with current default values), closures and classes."""

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer
        self.module = renderer.module
        self.imports = renderer.imports

    # -- globals ---------------------------------------------------------------------------
    def bind_global(self, name: str, obj: Any) -> str:
        """Make the generated module bind a name (``name`` when free) to ``obj``; returns it."""
        scalar = type(obj) in (int, float, complex, str, bytes, bool, type(None))
        names = self.module.names
        found = names.name_of(obj)
        if not scalar and found is not None:
            return found
        if (
            scalar
            and name in names
            and type(names.object_of(name)) is type(obj)
            and names.object_of(name) == obj
        ):
            return name
        if isinstance(obj, types.ModuleType):
            return self.imports.module_alias(obj, name)
        if isinstance(obj, Transform):
            return self.renderer.transforms.bind(obj, name)
        if (
            callable(obj)
            and not isinstance(obj, torch.nn.Module)
            and not isinstance(obj, ModuleProxy)
        ):
            if is_user_code(obj):
                return self.user_callable(obj, name)
            expr = self.imports.object_expr(obj, name)
            if expr is not None:
                return expr
        self.module.binding.add(id(obj))
        try:
            expr = self.renderer.values.value(obj, name)
        finally:
            self.module.binding.discard(id(obj))
        found = names.name_of(obj)
        if found is not None and not scalar:
            return found
        bound = self.module.claim(name, obj)
        self.module.define(f"{bound} = {expr}")
        return bound

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
                raise self.module.error(
                    f"{what} uses the name {name!r}, which is not defined in its module any more "
                    "(deleted, or bound only inside a function). Define it at module level."
                )
            bound = self.bind_global(name, obj)
            if bound != name:
                renames[name] = bound
        return source.rename(text, renames)

    # -- user functions --------------------------------------------------------------------
    def decorators(self, node: ast.AST, scope: dict[str, Any]) -> list[ast.expr]:
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
        if id(fn) in self.module.functions:
            return self.module.functions[id(fn)]
        snippet = source.function_snippet(fn)
        what = f"function {fn.__qualname__} ({snippet.filename}:{snippet.line})"
        code = fn.__code__
        scope = fn.__globals__
        closure: dict[str, Any] = {}
        for var, cell in zip(code.co_freevars, fn.__closure__ or ()):
            try:
                closure[var] = cell.cell_contents
            except ValueError as exc:
                raise self.module.error(f"{what} refers to {var!r} before it is assigned.") from exc
        is_lambda = isinstance(snippet.node, ast.Lambda)
        text = snippet.source
        transform_decorators = [] if is_lambda else self.decorators(snippet.node, scope)
        decorated = bool(transform_decorators) and not self.module.plain
        if self.module.plain and transform_decorators:
            text = source.strip_decorators(snippet, transform_decorators)
        text, defaults = self._rewrite_defaults(text, fn, scope, closure)
        name: str | None = None
        if not is_lambda and not closure:
            name = self.module.claim(fn.__name__, fn)
            if decorated:
                owner = scope.get(fn.__name__)
                if isinstance(owner, FunctionTransform) and owner.function is fn:
                    self.module.names.associate(name, owner)
            self.module.functions[id(fn)] = (name, decorated)
        self.module.where.append(what)
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
                self.module.define(text)
                result = name or fn.__name__, decorated
        finally:
            self.module.where.pop()
        self.module.functions[id(fn)] = result
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
        for arg, kw_node in zip(args.kwonlyargs, args.kw_defaults):
            if kw_node is not None and arg.arg in kw:
                pairs.append((kw_node, arg.arg, kw[arg.arg]))
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
                and type(default) not in SCALARS  # small ints are shared: identity proves nothing
                and default_node.id not in closure
                and scope.get(default_node.id, self) is default
            ):
                continue  # a global name: resolved (and kept) like any other global
            placeholder = f"__pd_default_{i}__"
            rendered[placeholder] = self.renderer.values.value(default, arg_name)
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
        factory = self.module.factories.get(key)
        if factory is None:
            base = fn.__name__ if not is_lambda else (hint or "lambda")
            factory = self.module.claim(f"_make_{base}", key)
            self.module.factories[key] = factory
            body = f"return {text}" if is_lambda else f"{text}\nreturn {fn.__name__}"
            self.module.define(
                f"def {factory}({', '.join(params)}):\n{textwrap.indent(body, '    ')}"
            )
        args = ", ".join(self.renderer.values.value(closure[p], p) for p in params)
        call = f"{factory}({args})"
        name = self.module.claim(hint or (fn.__name__ if not is_lambda else "f"), fn)
        self.module.define(f"{name} = {call}")
        return name

    def user_class(self, cls: type, hint: str | None = None, wrapped: type | None = None) -> str:
        found = self.module.name_of(cls)
        if found is not None:
            return found
        snippet = source.class_snippet(cls)
        what = f"class {cls.__qualname__} ({snippet.filename}:{snippet.line})"
        from padlc.language.atomic import transform_class_of

        for method, fn in source.set_after(cls, snippet, transform_class_of(cls)):
            code = fn.__code__
            raise self.module.error(
                f"Cannot save {what}: its `{method}` was set on the class after the class "
                f"statement (to `{fn.__qualname__}`, {code.co_filename}:{code.co_firstlineno}), "
                "and a class is saved from its source, so the saved class would not have it. "
                "Define the method in the class body (re-run the cell that defines the class), "
                "or in a subclass."
            )
        scope = self._class_scope(cls)
        text = snippet.source
        transform_decorators = self.decorators(snippet.node, scope)
        if self.module.plain and transform_decorators:
            text = source.strip_decorators(snippet, transform_decorators)
        name = self.module.claim(cls.__name__, cls)
        if transform_decorators and not self.module.plain:
            self.module.names.forget(cls)
            wrapped_class = scope.get(cls.__name__)
            if (
                isinstance(wrapped_class, type)
                and wrapped_class.__dict__.get("_pd_user_class") is cls
            ):
                self.module.names.associate(name, wrapped_class)
        self.module.where.append(what)
        try:
            text = self.resolve_names(text, source.global_names(text), scope, {}, set(), what)
        finally:
            self.module.where.pop()
        if name != cls.__name__:
            text = source.rename(text, {cls.__name__: name})
        self.module.define(text)
        return name

    def _class_scope(self, cls: type) -> dict[str, Any]:
        """The globals the class body's names resolve in: those of a method defined in the class
        itself, else its module's. (A function only stored on the class, such as ``pre =
        staticmethod(helper)`` or the machinery ``Enum`` adds, has its own module's globals.)"""
        module = sys.modules.get(cls.__module__)
        fallback: dict[str, Any] | None = None
        for attribute in vars(cls).values():
            fn = getattr(attribute, "__func__", attribute)
            scope = getattr(fn, "__globals__", None)
            if not isinstance(scope, dict) or getattr(fn, "__module__", None) != cls.__module__:
                continue
            if getattr(fn, "__qualname__", "").startswith(cls.__qualname__ + "."):
                return scope
            fallback = fallback or scope
        if module is not None:
            return vars(module)
        return fallback or {}
