"""Instances: objects of the user's and of installed classes, torch layers among them.

An instance is saved by the first route that works, each verified by building it again in the
saving process and comparing it with the live object (:mod:`padlc.capture.state`: the class, for a
torch module its module tree and the state dict's keys, shapes and dtypes, the attributes):

1. a recorded construction: a wrapped class's instance (``transform(Net)(5)``, ``@transform class
   C``) is ``Net(5)`` from the arguments recorded when it was made;
2. source lineage (:mod:`padlc.capture.lineage`): the statement that created it
   (``model = Net(5)``, ``model = make_model()``, ``transform(nn.Sequential(...))``);
3. a structural rebuild (:mod:`padlc.capture.structure`): containers from their children, layers
   from their attributes, transformers models from their config.

State set after construction follows as ``name.path = value``; an object whose class has a
serializer (:mod:`padlc.capture.serializers`) is saved as its files instead.
"""

from __future__ import annotations

import ast
import inspect
import keyword
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from padlc.capture import installed, lineage, serializers, source, state, structure
from padlc.capture.definitions import is_user_code
from padlc.capture.expressions import default_hint
from padlc.capture.module import describe
from padlc.errors import SaveError
from padlc.language.atomic import ClassTransform, ModuleProxy, user_class_of
from padlc.language.sites import place

if TYPE_CHECKING:
    from padlc.capture.render import Renderer

__all__ = ["Instances"]


class Instances:
    """Instances of classes: wrapped-class instances, ``transform(instance)`` and plain layers."""

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer
        self.module = renderer.module
        self.imports = renderer.imports
        #: objects whose statement is being rendered: a statement that reads the object itself
        #: again (`fh = files["x"]` with `files` holding `fh`) has no route, not an endless one
        self._rendering: set[int] = set()

    # -- objects held as values and transform(instance) ------------------------------------
    def layer(self, module: torch.nn.Module, hint: str) -> str:
        """A plain ``nn.Module`` (not a transform), its weights saved with the pipeline's."""
        found = self.module.name_of(module)
        if found is not None:
            return found
        varname = self.module.varnames.get(id(module))
        name = self._rebuilt(module, varname or (hint if hint != "value" else None), None)
        self.module.register_layer(module)
        return name

    def object(self, obj: Any, hint: str) -> str | None:
        """An object padlc has no other way to save, bound to a variable: the statement that
        assigned it (``config = BertConfig(hidden_size=64)``), verified; None without one."""
        varname = self.module.varnames.get(id(obj))
        scope = self._scope_of(obj, varname)
        if varname is None or scope is None:
            return None
        if id(obj) in self._rendering:
            return None
        found = lineage.of_variable(obj, varname, scope)
        if found is None:
            return None
        self._rendering.add(id(obj))
        try:
            result = self._from_lineage(obj, obj, found, varname)
        finally:
            self._rendering.discard(id(obj))
        return result.name if isinstance(result, _Bound) else None

    def _scope_of(self, obj: Any, name: str | None) -> dict[str, Any] | None:
        for scope in self.module.scopes:
            if name is not None and scope.get(name) is obj:
                return scope
        return None

    def wrapped(self, t: ClassTransform) -> str:
        """``transform(instance)``: the instance built again by the first route that works, each
        verified: the statement that created it (its source lineage), else, for containers and
        layers, a rebuild from its children and attributes. An object of a class with a
        registered serializer (a tokenizer) is saved as its files instead."""
        if isinstance(t, torch.nn.Module):
            self.module.register_layer(t)
        original = t.__dict__["_pd_wrapped"]
        varname = self.module.varnames.get(id(original)) or self.module.varnames.get(id(t))
        entry = serializers.find(original)
        name = self.module.name_of(original)
        if name is None and entry is not None:
            hint = varname or default_name(original)
            expr = self.renderer.values.serialized(original, entry, hint)
            name = self.module.claim(hint, original)
            self.module.define(f"{name} = {expr}")
        elif name is None:
            name = self._rebuilt(t, varname, t)
        if self.module.plain:  # the plain code applies (and loads the weights of) that object
            self.module.names.associate(name, t)
        return name if self.module.plain else f"{self.imports.padlc_name('transform')}({name})"

    def _rebuilt(self, live: Any, hint: str | None, site: ClassTransform | None) -> str:
        """A module-level name bound to ``live`` built again (``live`` is the transform itself
        for ``transform(instance)``, whose class is padlc's wrapper of the user's class)."""
        original = live.__dict__.get("_pd_wrapped", live)
        problems: list[str] = []
        found = self._lineage(original, site)
        if found is not None:
            result = self._from_lineage(live, original, found, hint)
            if not isinstance(result, str):
                return result.name
            problems.append(
                f"the statement that created it, `{_clip(found.expression)}` "
                f"({place(found.filename, found.line)}): {result}"
            )
        else:
            problems.append(
                "padlc found no statement that created it (an assignment or a call "
                "in a script, module or notebook cell)"
            )
        if isinstance(live, torch.nn.Module):
            with state.isolated():
                recipe = structure.rebuild(live)
            if isinstance(recipe, str):
                problems.append(f"built again from its layers: {recipe}")
            else:
                built = self._from_recipe(live, recipe, hint)
                if not isinstance(built, str):
                    return built.name
                problems.append(f"built again from its layers: {built}")
        raise self._instance_error(live, original, site, problems)

    def _lineage(self, obj: Any, site: ClassTransform | None) -> lineage.Lineage | None:
        if site is not None:
            location = site.__dict__.get("_pd_location")
            scope = site.__dict__.get("_pd_globals")
            if location and isinstance(scope, dict):
                code, lasti = site.__dict__.get("_pd_instruction", (None, -1))
                span = lineage.position(code, lasti) if code is not None else None
                found = lineage.at_site(
                    obj, location[0], location[1], span, scope, site.__dict__.get("_pd_locals")
                )
                if found is not None:
                    return found
        varname = self.module.varnames.get(id(obj))
        scope = self._scope_of(obj, varname)
        if varname is not None and scope is not None:
            return lineage.of_variable(obj, varname, scope)
        return None

    def _from_lineage(
        self, live: Any, original: Any, found: lineage.Lineage, hint: str | None
    ) -> _Bound | str:
        """``name = <the expression that created it>`` and the state set since, verified by
        running the expression again; or why that does not rebuild ``live``."""
        what = f"the statement that created {type(original).__name__} ({place(found.filename, found.line)})"
        if _loads_files(found.expression):
            return (
                "it loads pretrained files (`from_pretrained`), which loading the artifact would "
                "need again"
            )
        code = compile(found.expression, f"<{found.filename}:{found.line}>", "eval")
        check = state.changed_state(live, lambda: eval(code, dict(found.scope)))
        if check.problem:
            return check.problem
        checkpoint = self.module.checkpoint()
        try:
            with self.module.within(what):
                text = self.renderer.definitions.resolve_names(
                    found.expression,
                    source.global_names(found.expression),
                    found.scope,
                    {},
                    set(),
                    what,
                )
            name = self._bind_with_state(
                live, original, text, check, found.name or hint or default_name(original)
            )
        except SaveError as exc:
            self.module.restore(checkpoint)
            return str(exc)
        return _Bound(name)

    def _from_recipe(
        self, live: torch.nn.Module, recipe: structure.Recipe, hint: str | None
    ) -> _Bound | str:
        check = state.changed_state(live, lambda: recipe.built)
        if check.problem:
            return check.problem
        checkpoint = self.module.checkpoint()
        try:
            text = self._render_recipe(recipe)
            original = live.__dict__.get("_pd_wrapped", live)
            name = self._bind_with_state(
                live, original, text, check, hint or default_name(original)
            )
        except SaveError as exc:
            self.module.restore(checkpoint)
            return str(exc)
        return _Bound(name)

    def _render_recipe(self, recipe: structure.Recipe) -> str:
        values = self.renderer.values

        def render(value: Any, hint: str) -> str:
            if isinstance(value, structure.Recipe):
                return self._render_recipe(value)
            if isinstance(value, OrderedDict):
                pairs = ", ".join(f"({k!r}, {render(v, k)})" for k, v in value.items())
                return f"{values.value(OrderedDict)}([{pairs}])"
            if isinstance(value, dict):
                return "{" + ", ".join(f"{k!r}: {render(v, k)}" for k, v in value.items()) + "}"
            if isinstance(value, list):
                return "[" + ", ".join(render(v, hint) for v in value) + "]"
            return values.value(value, hint)

        parts = [render(a, "value") for a in recipe.args]
        parts += [f"{k}={render(v, k)}" for k, v in recipe.kwargs.items()]
        return f"{values.value(recipe.cls)}({', '.join(parts)})"

    def _bind_with_state(
        self, live: Any, original: Any, text: str, check: state.StateCheck, hint: str
    ) -> str:
        """``name = text`` followed by ``name.path = value`` for the state ``check`` found set
        after construction; raises SaveError for state padlc cannot save by value."""
        assignments = self._assignments(
            live,
            check,
            hint,
            lambda problem, path: SaveError(f"{problem}, which padlc cannot save by value"),
        )
        name = self.module.claim(hint, original)
        lines = [f"{name} = {text}"]
        lines += [assignment(name, live, path, rendered) for path, rendered in assignments]
        self.module.define("\n".join(lines))
        return name

    def _instance_error(
        self, live: Any, original: Any, site: ClassTransform | None, problems: list[str]
    ) -> SaveError:
        cls = type(original).__name__
        name = self.module.varnames.get(id(original)) or self.module.varnames.get(id(live))
        location = site.__dict__.get("_pd_location") if site is not None else None
        at = f"used at {place(*location)}" if location else ""
        if name:
            subject = f"`{name}` (a {cls}" + (f", {at})" if at else ")")
        else:
            subject = f"a {cls}" + (f" ({at})" if at else "")
        reasons = "".join(f"\n  - {p}" for p in problems)
        where = f" It is used by {self.module.where[-2]}." if len(self.module.where) > 1 else ""
        return SaveError(
            f"Cannot save {subject}: padlc saves an instance as the statement that created it, "
            f"or a container as its layers, verified, and neither rebuilds it as it is now:"
            f"{reasons}\nCreate it with one statement padlc can read (`model = {cls}(...)` in a "
            "script, module or notebook cell; state set afterwards is saved too), wrap its class "
            f"so its arguments are recorded (`transform({cls})(...)`), or store its constructor "
            f"arguments as attributes of the same names.{where}"
        )

    # -- wrapped classes: a recorded construction ----------------------------------------------
    def instance(self, t: ClassTransform) -> str:
        wrapped_class = type(t)
        user = user_class_of(wrapped_class)
        init = t.__dict__.get("_pd_init")
        if init is None and "_pd_wrapped" in t.__dict__:
            return self.wrapped(t)
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

    def _assignments(
        self,
        t: Any,
        check: state.StateCheck,
        hint: str,
        error: Callable[[str, str], SaveError],
    ) -> list[tuple[str, str]]:
        """``(path, rendered value)`` of each attribute ``check`` found set after construction."""
        hooked = callable(getattr(t, "pre_save", None)) or callable(getattr(t, "post_load", None))
        assignments: list[tuple[str, str]] = []
        for change in check.changed:
            if change.value is t:
                continue
            if change.missing:
                if hooked:
                    continue
                raise error(
                    f"its attribute {change.path!r} was deleted after construction", change.path
                )
            try:
                rendered = self.renderer.values.value(
                    change.value, f"{hint}_{change.path.replace('.', '_')}"
                )
            except SaveError as exc:
                if hooked:
                    continue  # its pre_save/post_load hooks carry the state
                raise error(
                    f"its attribute {change.path!r} was changed after construction to "
                    f"{_short(change.value)} (a {type(change.value).__name__})",
                    change.path,
                ) from exc
            assignments.append((change.path, rendered))
        return assignments

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
        hint = self.module.varnames.get(id(t)) or default_hint(t)
        assignments = self._assignments(
            t,
            check,
            hint,
            lambda problem, path: self._state_error(
                t,
                user,
                problem + (", which padlc cannot save by value" if "changed" in problem else ""),
                path,
            ),
        )
        if not assignments:
            return constructed
        if t.__dict__.get("_pd_name") is None:
            name = self.module.claim(hint, t)
        else:  # `- 'name'` is applied to the bound object by transform_expr
            name = self.module.claim(f"{hint}_base", object())
        lines = [f"{name} = {constructed}"]
        lines += [assignment(name, t, path, rendered) for path, rendered in assignments]
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


def _access(expr: str, owner: Any, part: str) -> tuple[str, Any]:
    """``expr.part`` (or ``expr[0]``, ``expr['key']``, ``getattr(expr, 'part')`` where ``part``
    is not an identifier: the numbered submodules of ``nn.Sequential``) and its value."""
    child = getattr(owner, part, None)
    if part.isidentifier() and not keyword.iskeyword(part):
        return f"{expr}.{part}", child
    if isinstance(owner, torch.nn.Sequential | torch.nn.ModuleList) and part.isdigit():
        return f"{expr}[{int(part)}]", child
    if isinstance(owner, torch.nn.ModuleDict):
        return f"{expr}[{part!r}]", child
    return f"getattr({expr}, {part!r})", child


def assignment(name: str, live: Any, path: str, rendered: str) -> str:
    """The statement setting attribute ``path`` (``fc.scale``, ``features.0.1.momentum``) of the
    object bound to ``name`` (``live`` in this process) to ``rendered``."""
    *parents, last = path.split(".")
    expr, owner = name, live
    for part in parents:
        expr, owner = _access(expr, owner, part)
    if last.isidentifier() and not keyword.iskeyword(last):
        return f"{expr}.{last} = {rendered}"
    return f"setattr({expr}, {last!r}, {rendered})"


@dataclass(frozen=True)
class _Bound:
    """The module-level name an instance was bound to."""

    name: str


def default_name(obj: Any) -> str:
    """A variable name for an object the user did not name: its class's, lower case."""
    return user_class_of(type(obj)).__name__.lower()


def _loads_files(expression: str) -> bool:
    """Whether ``expression`` calls a ``from_pretrained`` (a hub download or a local folder)."""
    return any(
        isinstance(node, ast.Attribute) and node.attr == "from_pretrained"
        for node in ast.walk(ast.parse(expression, mode="eval"))
    )


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."


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
