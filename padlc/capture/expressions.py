"""Rendering padlc transforms as expressions (``prepare >> batch >> model``), torch layers rebuilt
and verified, and instance state set after construction (``obj.attr = value``)."""

from __future__ import annotations

import ast
import textwrap
import types
from typing import Any

import torch

from padlc.capture import installed, source, state
from padlc.capture.namespace import (
    ADD,
    ATOM,
    DIV,
    SHIFT,
    UNARY,
    RendererBase,
    _describe,
)
from padlc.capture.values import _literal
from padlc.errors import SaveError
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

__all__ = ["TransformRenderer"]

_OPERATORS = {Compose: (">>", SHIFT), Rollout: ("+", ADD), Parallel: ("/", DIV)}

_MODE_SWITCH = {"train": "IfTrain", "eval": "IfEval", "infer": "IfInfer"}


class TransformRenderer(RendererBase):
    """Transforms, combinators, ``same``, mode switches, wrapped classes and torch layers."""

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
            children = [self.rebuild_module(c, user_class_of(type(c))) for c in module.children()]
            inner = ", ".join(children)
            return (
                f"{cls_expr}({inner})" if cls is torch.nn.Sequential else f"{cls_expr}([{inner}])"
            )
        kwargs: dict[str, Any] = {}
        problem = ""
        try:
            init = cls.__init__  # type: ignore[misc]
            parameters = list(inspect.signature(init).parameters.values())[1:]
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
            public = installed.import_path(cls)  # torch.nn.Sequential, not ...container.Sequential
            spelt = ".".join(public) if public is not None else f"{cls.__module__}.{name}"
            raise self.error(
                f"Cannot save the layer {name} made by `transform(instance)`: {problem}. Create it "
                f"through the wrapped class so its arguments are recorded, e.g. "
                f"`transform({spelt})(...)` or `@transform class {name}`, or give "
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
            match operation:
                case GetAttr(name):
                    text += f".{name}"
                case GetItem(key):
                    simple = all(
                        isinstance(k, int | slice | type(Ellipsis) | type(None)) or _literal(k)
                        for k in (key if isinstance(key, tuple) else (key,))
                    )
                    text += f"[{format_key(key) if simple else self.value(key)}]"
                case CallValue(args, kwargs):
                    parts = [self.value(a) for a in args]
                    parts += [f"{k}={self.value(v, k)}" for k, v in kwargs.items()]
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
            hint = self.varnames.get(id(t))
            if hint is not None and fn.__closure__:
                # A closure is bound to a name of its own (`shift = _make_shift(3.0)`); the
                # transform keeps the user's variable name (`shift3 = transform(shift)`), which
                # is also its output field name in rollouts.
                hint = f"{hint}_fn" if fn.__name__ == "<lambda>" else None
            expr, decorated = self.user_function(fn, hint)
            if decorated or self.plain:
                return expr
            return f"{self.padlc_name('transform')}({expr})"
        expr = self.value(fn)
        if self.plain:
            return expr
        return f"{self.padlc_name('transform')}({expr})"

    def _instance(self, t: ClassTransform) -> str:
        wrapped_class = type(t)
        user = user_class_of(wrapped_class)
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
        parts = [self.value(a, _hint_arg(user, i, a)) for i, a in enumerate(args)]
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
        return user_class_of(type(t)).__name__.lower()
    return type(t).__name__.lower()


def _copied_state(t: Transform) -> dict[str, Any]:
    skip = ("_pd_name", "_pd_stages_cache", "_pd_layers_cache")
    return {k: v for k, v in vars(t).items() if k not in skip}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _hint_arg(cls: type, index: int, value: Any = None) -> str:
    """A name for constructor argument ``index``: its parameter's (``in_features``), or for one of
    ``*args`` the value's class (``nn.Sequential(linear, tanh)``, not ``args``)."""
    import inspect

    try:
        init = cls.__init__  # type: ignore[misc]
        parameters = [p for p in inspect.signature(init).parameters.values() if p.name != "self"]
    except (TypeError, ValueError):
        return "value"
    fallback = type(value).__name__.lower() if value is not None else "value"
    for i, parameter in enumerate(parameters):
        if parameter.kind is parameter.VAR_POSITIONAL:
            return fallback if index >= i else parameters[index].name
        if parameter.kind is parameter.KEYWORD_ONLY or parameter.kind is parameter.VAR_KEYWORD:
            break
        if i == index:
            return parameter.name
    return "value"


def _shapes(module: torch.nn.Module) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    return [(k, tuple(v.shape), v.dtype) for k, v in module.state_dict().items()]
