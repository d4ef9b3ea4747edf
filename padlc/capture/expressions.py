"""Rendering padlc transforms as expressions: ``prepare >> batch >> model``, ``~f``, ``same[0]``,
mode switches and ``Try``, with the transforms bound to names where the user named them."""

from __future__ import annotations

import ast
import textwrap
import types
from typing import TYPE_CHECKING, Any

from padlc.capture import source
from padlc.capture.definitions import is_user_code
from padlc.capture.module import describe
from padlc.capture.values import is_literal
from padlc.language.atomic import ClassTransform, FunctionTransform, ModuleProxy, user_class_of
from padlc.language.base import Transform
from padlc.language.combinators import Compose, Map, Parallel, Pipeline, Rollout
from padlc.language.markers import Batchify, Identity, Unbatchify
from padlc.language.modes import IfInMode, Try
from padlc.language.operations import (
    CallValue,
    GetAttr,
    GetItem,
    format_key,
    unknown_operation,
)
from padlc.language.same import Same

if TYPE_CHECKING:
    from padlc.capture.render import Renderer

__all__ = ["ADD", "ATOM", "DIV", "SHIFT", "UNARY", "Transforms", "default_hint"]

#: Operator precedences of the pipeline language, loosest last.
ATOM, UNARY, DIV, ADD, SHIFT = 5, 4, 3, 2, 1

_OPERATORS = {Compose: (">>", SHIFT), Rollout: ("+", ADD), Parallel: ("/", DIV)}

_MODE_SWITCH = {"train": "IfTrain", "eval": "IfEval", "infer": "IfInfer"}


class Transforms:
    """Transforms, combinators, ``same``, mode switches and ``transform(module)`` proxies."""

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer
        self.module = renderer.module
        self.imports = renderer.imports

    def module_proxy(self, proxy: ModuleProxy, hint: str) -> str:
        found = self.module.name_of(proxy)
        if found is not None:
            return found
        name = self.module.claim(self.module.varnames.get(id(proxy), hint), proxy)
        module = self.imports.module_expr(proxy._pd_module)
        self.module.define(f"{name} = {self.imports.padlc_name('transform')}({module})")
        return name

    def bind(self, t: Transform, name: str) -> str:
        """Bind transform ``t`` to a module-level name (preferring ``name``)."""
        names = self.module.names
        found = names.name_of(t)
        if found is not None:
            return found
        expr, _ = self.expression(t)
        found = names.name_of(t)
        if found is not None:  # a decorated def or class bound it
            return found
        if expr.isidentifier() and expr in names:  # the plain function itself
            names.associate(expr, t)
            return expr
        bound = self.module.claim(name, t)
        self.module.define(f"{bound} = {expr}")
        return bound

    def ref(self, t: Transform, hint: str = "t") -> str:
        text, _ = self.operand(t, ATOM)
        return text

    def operand(self, t: Transform, parent: int) -> tuple[str, int]:
        found = self.module.name_of(t)
        if found is not None:
            return found, ATOM
        varname = self.module.varnames.get(id(t))
        if varname is not None or id(t) in self.module.hoist:
            return self.bind(t, varname or default_hint(t)), ATOM
        text, precedence = self.expression(t)
        found = self.module.name_of(t)
        if found is not None:
            return found, ATOM
        if parent != ATOM and precedence <= parent:
            return f"({text})", ATOM
        return text, precedence

    def expression(self, t: Transform) -> tuple[str, int]:
        name = t.__dict__.get("_pd_name")
        origin = self._renamed_from(t) if name is not None else None
        if origin is not None:  # `layer - 'name'`: a copy that shares the layer's state
            text = self.operand(origin, ATOM)[0]
            return (text, ATOM) if self.module.plain else (f"{text} - {name!r}", ADD)
        with self.module.within(describe(t)):
            text, precedence = self._expression(t)
        if name is not None and not isinstance(t, Pipeline | Map) and not self.module.plain:
            if precedence <= ADD:
                text = f"({text})"
            return f"{text} - {name!r}", ADD
        return text, precedence

    def _expression(self, t: Transform) -> tuple[str, int]:
        if isinstance(t, Pipeline):
            operator, precedence = _OPERATORS[type(t)]
            parts = [self.operand(c, precedence)[0] for c in t._pd_transforms]
            text = f" {operator} ".join(parts)
            if t._pd_grouped:
                text, precedence = f"{self.imports.padlc_name('group')}({text})", ATOM
            name = t.__dict__.get("_pd_name")
            if name is not None:
                if precedence <= ADD:
                    text = f"({text})"
                text, precedence = f"{text} - {name!r}", ADD
            return text, precedence
        if isinstance(t, Map):
            inner, _ = self.operand(t._pd_transform, UNARY)
            text = f"~{inner}"
            name = t.__dict__.get("_pd_name")
            if name is not None:
                return f"({text}) - {name!r}", ADD
            return text, UNARY
        if isinstance(t, Identity | Batchify | Unbatchify):
            word = {Identity: "identity", Batchify: "batch", Unbatchify: "unbatch"}[type(t)]
            return self.imports.padlc_name(word), ATOM
        if isinstance(t, Same):
            return self._same(t), ATOM
        if isinstance(t, IfInMode):
            from padlc.language.markers import identity

            args = [self.ref(t.if_)]
            if t.else_ is not identity:
                args.append(f"else_={self.ref(t.else_)}")
            return (
                f"{self.imports.padlc_name(_MODE_SWITCH[t.target_mode])}({', '.join(args)})",
                ATOM,
            )
        if isinstance(t, Try):
            parts = [self.ref(t.transform), self.ref(t.catch_transform)]
            parts.append(self.renderer.values.value(t.exceptions))
            parts += [
                f"else_transform={self.ref(t.else_transform)}",
                f"finally_transform={self.ref(t.finally_transform)}",
            ]
            return f"{self.imports.padlc_name('Try')}({', '.join(parts)})", ATOM
        if isinstance(t, FunctionTransform):
            return self._function_transform(t), ATOM
        if isinstance(t, ClassTransform):
            return self.renderer.instances.instance(t), ATOM
        raise self.module.error(f"padlc does not know how to save a {type(t).__name__}.")

    def _renamed_from(self, t: Transform) -> Transform | None:
        """The transform ``t`` was copied from by ``t - 'name'`` when it is bound to a variable or
        part of the pipeline: a class instance whose state is the very same objects (for a layer:
        the same parameters), so the saved code makes the copy the same way and shares them."""
        if not isinstance(t, ClassTransform):
            return None
        own = _copied_state(t)
        candidates = [
            *self.module.transforms,
            *(v for scope in self.module.scopes for v in scope.values()),
        ]
        for candidate in candidates:
            if candidate is t or type(candidate) is not type(t):
                continue
            theirs = _copied_state(candidate)
            if own.keys() == theirs.keys() and all(own[k] is theirs[k] for k in own):
                return candidate  # type: ignore[no-any-return]
        return None

    def _same(self, t: Same) -> str:
        text = self.imports.padlc_name("same")
        for operation in t._pd_operations:
            match operation:
                case GetAttr(name):
                    text += f".{name}"
                case GetItem(key):
                    simple = all(
                        isinstance(k, int | slice | type(Ellipsis) | type(None)) or is_literal(k)
                        for k in (key if isinstance(key, tuple) else (key,))
                    )
                    text += f"[{format_key(key) if simple else self.renderer.values.value(key)}]"
                case CallValue(args, kwargs):
                    parts = [self.renderer.values.value(a) for a in args]
                    parts += [f"{k}={self.renderer.values.value(v, k)}" for k, v in kwargs.items()]
                    text += f"({', '.join(parts)})"
                case _:
                    unknown_operation(operation)
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
                drop = self.renderer.definitions.decorators(snippet.node, scope)
                if self.module.plain:
                    text = source.strip_decorators(snippet, drop)
                name = self.module.claim(node.name, t)
                what = f"function {node.name} ({location[0]}:{location[1]})"
                text = self.renderer.definitions.resolve_names(
                    text, source.global_names(text), scope, {}, set(), what
                )
                if name != node.name:
                    text = source.rename(text, {node.name: name})
                self.module.define(text)
                return name
        return None

    def _function_transform(self, t: FunctionTransform) -> str:
        fn = t.function
        stacked = self._stacked_def(t) if is_user_code(fn) else None
        if stacked is not None:
            return stacked
        if isinstance(fn, types.FunctionType) and is_user_code(fn):
            hint = self.module.varnames.get(id(t))
            if hint is not None and fn.__closure__:
                # A closure is bound to a name of its own (`shift = _make_shift(3.0)`); the
                # transform keeps the user's variable name (`shift3 = transform(shift)`), which
                # is also its output field name in rollouts.
                hint = f"{hint}_fn" if fn.__name__ == "<lambda>" else None
            expr, decorated = self.renderer.definitions.user_function(fn, hint)
            if decorated or self.module.plain:
                return expr
            return f"{self.imports.padlc_name('transform')}({expr})"
        expr = self.renderer.values.value(fn)
        if self.module.plain:
            return expr
        return f"{self.imports.padlc_name('transform')}({expr})"


def default_hint(t: Transform) -> str:
    """A name for ``t`` when the user gave it none (its function's or class's)."""
    if isinstance(t, FunctionTransform):
        return getattr(t.function, "__name__", "f").replace("<lambda>", "f")
    if isinstance(t, ClassTransform):
        return user_class_of(type(t)).__name__.lower()
    return type(t).__name__.lower()


def _copied_state(t: Transform) -> dict[str, Any]:
    skip = ("_pd_name", "_pd_stages_cache", "_pd_layers_cache")
    return {k: v for k, v in vars(t).items() if k not in skip}
