"""IR → view model: the stages of a pipeline as straight-line Python functions.

Expressions and statements are built as :mod:`ast` nodes and printed with :func:`ast.unparse`, so
the generated code is valid by construction; Jinja only lays out the file (see ``render``).
Combinators become plain code: a rollout a namedtuple of calls, a parallel an unpacking, a map a
comprehension, ``same`` operations attribute/item/method access, ``Try`` a ``try`` statement.
Mode switches must be resolved before (:func:`padlc.ir.resolve_mode`).
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from padlc.codegen.view import FunctionView, ModuleView, NamedTupleView
from padlc.errors import BuildError
from padlc.ir import nodes as ir
from padlc.ir.printer import format_location
from padlc.language.operations import unknown_operation
from padlc.naming import Namespace

__all__ = ["StageSpec", "emit_module"]


#: The attribute of a generated statement holding ``file:line`` of the transform it runs.
_LOCATION = "padlc_location"


def _located(statement: ast.stmt, node: ir.Node | None) -> ast.stmt:
    """``statement``, carrying where ``node``'s transform was created (``pl.py:12``), which the
    generated line shows as a comment."""
    where = format_location(node.location) if node is not None else ""
    if where:
        setattr(statement, _LOCATION, where)
    return statement


@dataclass(frozen=True, slots=True)
class StageSpec:
    """One function to generate: its name, the IR it runs (``None``: the stage is absent)."""

    name: str
    node: ir.Node | None
    doc: str


def _literal(value: Any, node: ir.Node, imports: set[str]) -> ast.expr:
    """An expression for a constant argument of a ``same`` operation or a ``getitem`` key."""
    if isinstance(value, slice):
        return ast.Slice(
            *(
                None if v is None else _literal(v, node, imports)
                for v in (value.start, value.stop, value.step)
            )
        )
    if value is Ellipsis:
        return ast.Constant(Ellipsis)
    if isinstance(value, tuple):
        return ast.Tuple([_literal(v, node, imports) for v in value], ast.Load())
    if isinstance(value, list):
        return ast.List([_literal(v, node, imports) for v in value], ast.Load())
    if isinstance(value, dict):
        return ast.Dict(
            [_literal(k, node, imports) for k in value],
            [_literal(v, node, imports) for v in value.values()],
        )
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return ast.Constant(value)
    module = type(value).__module__
    if module == "torch" and type(value).__name__ in ("dtype", "device"):
        imports.add("import torch")
        return ast.parse(
            repr(value) if type(value).__name__ == "dtype" else f"torch.device({str(value)!r})",
            mode="eval",
        ).body
    where = format_location(node.location)
    raise BuildError(
        f"Cannot generate code for `{node.label}`"
        + (f" ({where})" if where else "")
        + f": its argument {value!r} (a {type(value).__name__}) is not a literal. Use numbers, "
        "strings, tuples, slices or torch dtypes in `same` operations, or write a function."
    )


def _exception_name(exc: type[BaseException], imports: set[str]) -> ast.expr:
    if getattr(builtins, exc.__name__, None) is exc:
        return ast.Name(exc.__name__, ast.Load())
    module = exc.__module__
    if module in ("__main__", "") or module.startswith("padlc"):
        raise BuildError(
            f"Cannot generate code for Try(..., exceptions={exc.__name__}): the exception class is "
            f"defined in {module!r}, which the generated module cannot import. Use a built-in "
            "exception or one from an installed package."
        )
    imports.add(f"import {module}")
    return ast.parse(f"{module}.{exc.__qualname__}", mode="eval").body


@dataclass
class _Emitter:
    names: Mapping[int, str]
    namespace: Namespace
    imports: set[str]
    namedtuples: dict[tuple[str, ...], str] = field(default_factory=dict)
    helpers: list[FunctionView] = field(default_factory=list)
    tuples: set[str] = field(default_factory=set)

    # -- building blocks -----------------------------------------------------------------------
    def leaf(self, call: ir.Call) -> ast.expr:
        expression = self.names.get(id(call.transform))
        if expression is None:  # pragma: no cover - capture names every leaf it is given
            raise BuildError(f"No captured code for `{call.label}`.")
        return ast.parse(expression, mode="eval").body

    def namedtuple(self, fields: tuple[str, ...]) -> str:
        if fields not in self.namedtuples:
            self.namedtuples[fields] = self.namespace.create("Output_" + "_".join(fields)[:40])
        return self.namedtuples[fields]

    @staticmethod
    def name(identifier: str) -> ast.Name:
        return ast.Name(identifier, ast.Load())

    def assign(
        self, body: list[ast.stmt], target: str, value: ast.expr, node: ir.Node | None = None
    ) -> str:
        """``target = value``, marked with where ``node``'s transform was created."""
        body.append(_located(ast.Assign([ast.Name(target, ast.Store())], value, lineno=0), node))
        self.tuples.discard(target)
        return target

    def call_expr(self, call: ir.Call, src: str) -> ast.expr:
        function = self.leaf(call)
        if call.vmap:  # moved into the forward by the stage-boundary move: per item over the batch
            self.imports.add("from padl_runtime.moved import per_item")
            return ast.Call(self.name("per_item"), [function, self.name(src)], [])
        single = ast.Call(function, [self.name(src)], [])
        if not call.unpack:
            return single
        spread = ast.Call(function, [ast.Starred(self.name(src), ast.Load())], [])
        if src in self.tuples:
            return spread
        test = ast.Call(
            self.name("isinstance"),
            [self.name(src), ast.Tuple([self.name("tuple"), self.name("list")], ast.Load())],
            [],
        )
        return ast.IfExp(test, spread, single)

    def attr_expr(self, node: ir.Attr, value: ast.expr) -> ast.expr:
        for operation in node.operations:
            match operation:
                case ir.GetAttr(name):
                    value = ast.Attribute(value, name, ast.Load())
                case ir.GetItem(key):
                    value = ast.Subscript(value, _literal(key, node, self.imports), ast.Load())
                case ir.CallValue(args, kwargs):
                    value = ast.Call(
                        value,
                        [_literal(a, node, self.imports) for a in args],
                        [
                            ast.keyword(k, _literal(v, node, self.imports))
                            for k, v in kwargs.items()
                        ],
                    )
                case _:
                    unknown_operation(operation)
        return value

    def simple(self, node: ir.Node, src: str) -> ast.expr | None:
        """An expression for ``node`` applied to ``src`` when it is one call or one ``same``."""
        if isinstance(node, ir.Call):
            return self.call_expr(node, src)
        if isinstance(node, ir.Attr):
            return self.attr_expr(node, self.name(src))
        return None

    # -- statements ----------------------------------------------------------------------------
    def emit(self, node: ir.Node, src: str, body: list[ast.stmt], target: str) -> str:
        """Append statements computing ``node(src)``; returns the variable holding the result."""
        if isinstance(node, ir.Identity | ir.Batch | ir.Unbatch):
            return src
        expression = self.simple(node, src)
        if expression is not None:
            return self.assign(body, target, expression, node)
        if isinstance(node, ir.Seq):
            value = src
            for step in node.steps:
                value = self.emit(step, value, body, target)
            return value
        if isinstance(node, ir.Rollout):
            outs = [
                self.emit(b, src, body, self.namespace.create(f"{target}_{f}"))
                for b, f in zip(node.branches, node.fields)
            ]
            return self.make_tuple(body, target, node.fields, outs, node)
        if isinstance(node, ir.Parallel):
            parts = [self.namespace.create(f"{target}_{f}_in") for f in node.fields]
            body.append(
                ast.Assign(
                    [ast.Tuple([ast.Name(p, ast.Store()) for p in parts], ast.Store())],
                    self.name(src),
                    lineno=0,
                )
            )
            outs = [
                self.emit(b, p, body, self.namespace.create(f"{target}_{f}"))
                for b, p, f in zip(node.branches, parts, node.fields)
            ]
            return self.make_tuple(body, target, node.fields, outs, node)
        if isinstance(node, ir.Map):
            item = self.namespace.create("item")
            expression = self.simple(node.body, item)
            if expression is None:
                helper = self.namespace.create(f"map_{node.body.label}")
                self.helpers.append(
                    self.function(helper, node.body, f"One element of `{node.label}`.")
                )
                expression = ast.Call(self.name(helper), [self.name(item)], [])
            comprehension = ast.ListComp(
                expression, [ast.comprehension(ast.Name(item, ast.Store()), self.name(src), [], 0)]
            )
            self.assign(body, target, ast.Call(self.name("tuple"), [comprehension], []), node)
            self.tuples.add(target)
            return target
        if isinstance(node, ir.Try):
            return self.emit_try(node, src, body, target)
        raise BuildError(  # pragma: no cover - Switch is resolved before code generation
            f"Cannot generate code for `{node.label}` ({type(node).__name__})."
        )

    def make_tuple(
        self,
        body: list[ast.stmt],
        target: str,
        fields: tuple[str, ...],
        outs: list[str],
        node: ir.Node | None = None,
    ) -> str:
        value = ast.Call(self.name(self.namedtuple(fields)), [self.name(o) for o in outs], [])
        self.assign(body, target, value, node)
        self.tuples.add(target)
        return target

    def emit_try(self, node: ir.Try, src: str, body: list[ast.stmt], target: str) -> str:
        one_step = isinstance(node.body, ir.Call | ir.Attr | ir.Identity)
        if src == target and not (one_step and isinstance(node.finally_, ir.Identity)):
            # The body writes `target` step by step (a step can fail after another assigned it)
            # and `finally` runs after it: both the handler and `finally` need the input.
            given = self.namespace.create(f"{target}_in")
            self.assign(body, given, self.name(src))
            if src in self.tuples:
                self.tuples.add(given)
            src = given
        attempt: list[ast.stmt] = []
        out = self.emit(node.body, src, attempt, target)
        if out != target:
            self.assign(attempt, target, self.name(out))
        handler: list[ast.stmt] = []
        caught = self.emit(node.catch, src, handler, target)
        if caught != target:
            self.assign(handler, target, self.name(caught))
        otherwise: list[ast.stmt] = []
        after = self.emit(node.else_, target, otherwise, target)
        if after != target:  # pragma: no cover - emit writes into target
            self.assign(otherwise, target, self.name(after))
        final: list[ast.stmt] = []
        if not isinstance(node.finally_, ir.Identity):  # `finally_transform(x)`, for its effect
            self.emit(node.finally_, src, final, self.namespace.create("_"))
        exceptions = [_exception_name(e, self.imports) for e in node.exceptions]
        kinds = exceptions[0] if len(exceptions) == 1 else ast.Tuple(exceptions, ast.Load())
        body.append(
            _located(
                ast.Try(
                    body=attempt or [ast.Pass()],
                    handlers=[ast.ExceptHandler(kinds, None, handler or [ast.Pass()])],
                    orelse=otherwise,
                    finalbody=final,
                ),
                node,
            )
        )
        self.tuples.discard(target)
        return target

    def function(self, name: str, node: ir.Node, doc: str) -> FunctionView:
        body: list[ast.stmt] = []
        saved = self.tuples
        self.tuples = set()
        out = self.emit(node, "x", body, "x")
        self.tuples = saved
        body.append(ast.Return(self.name(out)))
        lines: list[str] = []
        for statement in body:
            text = ast.unparse(ast.fix_missing_locations(statement)).splitlines()
            where = getattr(statement, _LOCATION, "")
            if where:  # the user's line the step comes from, for whoever reads the module
                text[0] += f"  # {where}"
            lines += text
        return FunctionView(name=name, params="x", body=tuple(lines), doc=doc)


def _import_lines(code_module: str, names: Mapping[int, str]) -> tuple[list[str], set[str]]:
    """``from .<code_module> import ...`` for the names the leaf expressions use."""
    used: set[str] = set()
    for expression in names.values():
        for part in ast.walk(ast.parse(expression, mode="eval")):
            if isinstance(part, ast.Name):
                used.add(part.id)
    if not used:
        return [], used
    return [f"from .{code_module} import {', '.join(sorted(used))}"], used


def emit_module(
    stages: list[StageSpec],
    names: Mapping[int, str],
    *,
    code_module: str,
    header: tuple[str, ...],
    docstring: str,
) -> ModuleView:
    """The view model of one generated module holding ``stages`` as functions.

    ``names`` maps ``id(transform)`` of every leaf to an expression in ``code_module`` (the user's
    captured code, imported relatively: the artifact is loaded as a package).
    """
    relevant = {k: v for k, v in names.items()}
    lines, used = _import_lines(code_module, relevant)
    namespace = Namespace(used | {"x", "output_tuple"}, builtins=True)
    emitter = _Emitter(names=relevant, namespace=namespace, imports=set())
    functions: list[FunctionView] = []
    for stage in stages:
        if stage.node is None:
            functions.append(
                FunctionView(
                    name=stage.name,
                    params="",
                    body=(),
                    doc=f"the pipeline has no {stage.name} stage",
                )
            )
        else:
            functions.append(emitter.function(stage.name, stage.node, stage.doc))
    imports = sorted(emitter.imports)
    if emitter.namedtuples:
        imports.insert(0, "from padl_runtime.outputs import output_tuple")
    return ModuleView(
        header=header,
        docstring=docstring,
        imports=tuple(imports + lines),
        namedtuples=tuple(
            NamedTupleView(name=n, fields=repr(list(f))) for f, n in emitter.namedtuples.items()
        ),
        helpers=tuple(emitter.helpers),
        functions=tuple(functions),
    )
