"""Instances: objects of the user's and of installed classes, torch layers among them.

A transform made from a class (``transform(Net)(5)``, ``@transform class C``) is rebuilt from the
constructor arguments recorded when it was made, followed by the state set after construction
(``obj.attr = value``, found by :mod:`padlc.capture.state`); a plain ``nn.Module`` from the
attributes named like its constructor's parameters, verified.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import torch

from padlc.capture import installed, state
from padlc.capture.definitions import is_user_code
from padlc.capture.expressions import default_hint
from padlc.capture.module import describe
from padlc.errors import SaveError
from padlc.language.atomic import ClassTransform, ModuleProxy, user_class_of

if TYPE_CHECKING:
    from padlc.capture.render import Renderer

__all__ = ["Instances"]


class Instances:
    """Instances of classes: wrapped-class instances, ``transform(instance)`` and plain layers."""

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer
        self.module = renderer.module
        self.imports = renderer.imports

    def layer(self, module: torch.nn.Module, hint: str) -> str:
        """A plain ``nn.Module`` (not a transform): rebuilt from its attributes, weights saved."""
        found = self.module.name_of(module)
        if found is not None:
            return found
        expr = self.rebuild_module(module, type(module))
        name = self.module.claim(
            self.module.varnames.get(
                id(module), hint if hint != "value" else type(module).__name__.lower()
            ),
            module,
        )
        self.module.define(f"{name} = {expr}")
        self.module.register_layer(module)
        return name

    def rebuild_module(self, module: torch.nn.Module, cls: type) -> str:
        """``Cls(arg=...)`` from the attributes named like ``__init__``'s parameters, checked by
        building it and comparing ``repr`` and the state dict's keys, shapes and dtypes."""
        cls_expr = self.renderer.values.value(cls)
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
            raise self.module.error(
                f"Cannot save the layer {name} made by `transform(instance)`: {problem}. Create it "
                f"through the wrapped class so its arguments are recorded, e.g. "
                f"`transform({spelt})(...)` or `@transform class {name}`, or give "
                "it `pre_save(self, path, i)` / `post_load(self, path, i)` methods."
            )
        args = ", ".join(f"{k}={self.renderer.values.value(v, k)}" for k, v in kwargs.items())
        return f"{cls_expr}({args})"

    def instance(self, t: ClassTransform) -> str:
        wrapped_class = type(t)
        user = user_class_of(wrapped_class)
        init = t.__dict__.get("_pd_init")
        if init is None and "_pd_wrapped" in t.__dict__:
            if isinstance(t, torch.nn.Module):
                self.module.register_layer(t)
                plain_expr = self.rebuild_module(t, user)
                return (
                    plain_expr
                    if self.module.plain
                    else f"{self.imports.padlc_name('transform')}({plain_expr})"
                )
            raise self.module.error(
                f"Cannot save {describe(t)}: it was made by `transform(instance)`, so its "
                f"constructor arguments are unknown. Wrap the class instead "
                f"(`transform({user.__name__})(...)` or `@transform class {user.__name__}`), or give "
                f"{user.__name__} `pre_save(self, path, i)` / `post_load(self, path, i)` methods."
            )
        if init is None:
            raise self.module.error(
                f"Cannot save {describe(t)}: its constructor arguments were not recorded."
            )
        cls_expr = self._class_expr(wrapped_class, user)
        args, kwargs = init
        parts = [self.renderer.values.value(a, _hint_arg(user, i, a)) for i, a in enumerate(args)]
        parts += [f"{k}={self.renderer.values.value(v, k)}" for k, v in kwargs.items()]
        if isinstance(t, torch.nn.Module):
            self.module.register_layer(t)
        constructed = f"{cls_expr}({', '.join(parts)})"
        return self._restore_state(t, user, constructed)

    def _restore_state(self, t: ClassTransform, user: type, constructed: str) -> str:
        """``constructed`` when it rebuilds ``t`` as it is now; else a name bound to it followed by
        ``name.attr = value`` for each attribute set after construction (or a SaveError)."""
        args, kwargs = t.__dict__["_pd_init"]
        if is_user_code(user) or installed.import_path(user) is not None:
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
            hint = f"{self.module.varnames.get(id(t)) or default_hint(t)}_{change.path.replace('.', '_')}"
            try:
                rendered = self.renderer.values.value(change.value, hint)
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
            name = self.module.claim(self.module.varnames.get(id(t)) or default_hint(t), t)
        else:  # `- 'name'` is applied to the bound object by transform_expr
            anchor = object()
            name = self.module.claim(
                f"{self.module.varnames.get(id(t)) or default_hint(t)}_base", anchor
            )
        lines = [f"{name} = {constructed}"]
        lines += [f"{name}.{path} = {rendered}" for path, rendered in assignments]
        self.module.define("\n".join(lines))
        return name

    def _state_error(
        self, t: ClassTransform, user: type, problem: str, attribute: str = ""
    ) -> SaveError:
        cls = user.__name__
        message = (
            f"Cannot save {describe(t)}: {problem}. The saved code rebuilds it as "
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
        if self.module.plain:
            return self.renderer.values.value(user)
        found = self.module.name_of(wrapped_class)
        if found is not None:
            return found
        if is_user_code(user):
            name = self.renderer.definitions.user_class(user)
            found = self.module.name_of(wrapped_class)
            if found is not None:
                return found
            return f"{self.imports.padlc_name('transform')}({name})"
        varname = self.module.varnames.get(id(wrapped_class))
        for scope in self.module.scopes:  # `nn = transform(torch.nn)` ... `nn.Linear(3, 4)`
            for key, value in scope.items():
                if (
                    isinstance(value, ModuleProxy)
                    and getattr(value._pd_module, user.__name__, None) is user
                ):
                    return f"{self.renderer.transforms.module_proxy(value, key)}.{user.__name__}"
        inner = self.renderer.values.value(user)
        if varname is not None:
            name = self.module.claim(varname, wrapped_class)
            self.module.define(f"{name} = {self.imports.padlc_name('transform')}({inner})")
            return name
        return f"{self.imports.padlc_name('transform')}({inner})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _hint_arg(cls: type, index: int, value: Any = None) -> str:
    """A name for constructor argument ``index``: its parameter's (``in_features``), or for one of
    ``*args`` the value's class (``nn.Sequential(linear, tanh)``, not ``args``)."""
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
