"""Source lineage: the statement or expression of the user's code that created an object.

``model = Net(5)``, ``model = make_model()``, ``transform(nn.Sequential(...))`` inline, an
assignment in the function that returns the pipeline: the capture saves such an object as the
expression that made it (verified by :mod:`padlc.capture.instances`). Everything here reads source
at save time (``linecache``: scripts, modules, IPython/Jupyter cells); at creation time
``transform(instance)`` records only its frame's line, instruction and locals.
"""

from __future__ import annotations

import ast
import linecache
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from padlc.capture import installed, source

__all__ = ["Lineage", "at_site", "of_variable"]

_COMPOUND = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.With,
    ast.AsyncWith,
    ast.Try,
    ast.Match,
)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_MISSING = object()
Position = tuple[int, int, int, int]  # line, end line, column, end column (as co_positions)


@dataclass(frozen=True)
class Lineage:
    """``expression`` (source text) made the object, reading names from ``scope``; it was written
    at ``filename:line``, assigned to ``name`` when it is the value of an assignment."""

    expression: str
    scope: dict[str, Any] = field(repr=False)
    filename: str
    line: int
    name: str | None = None


def position(code: types.CodeType, lasti: int) -> Position | None:
    """The source span of the instruction at byte offset ``lasti`` of ``code``."""
    positions = getattr(code, "co_positions", None)
    if positions is None or lasti < 0:  # pragma: no cover - Python 3.10
        return None
    for i, found in enumerate(positions()):
        if i == lasti // 2:
            return found if None not in found else None  # type: ignore[return-value]
    return None


def _evaluate(node: ast.expr, scope: dict[str, Any]) -> Any:
    """The value of a name or dotted attribute (``nn.Sequential``) in ``scope``; ``_MISSING`` for
    anything else (evaluating calls would run the user's code)."""
    if isinstance(node, ast.Name):
        if node.id in scope:
            return scope[node.id]
        builtins = scope.get("__builtins__")
        table = builtins if isinstance(builtins, dict) else vars(builtins or __builtins__)
        return table.get(node.id, _MISSING)
    if isinstance(node, ast.Attribute):
        owner = _evaluate(node.value, scope)
        if owner is _MISSING or not isinstance(owner, types.ModuleType | type):
            return _MISSING  # attributes of modules and classes only: no property runs
        return getattr(owner, node.attr, _MISSING)
    return _MISSING


def _inside(node: ast.AST, span: Position) -> bool:
    line, end_line, col, end_col = span
    start = (node.lineno, node.col_offset)  # type: ignore[attr-defined]
    end = (node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
    return (line, col) <= start and end <= (end_line, end_col)


def _covers(node: ast.AST, span: Position) -> bool:
    line, end_line, col, end_col = span
    start = (node.lineno, node.col_offset)  # type: ignore[attr-defined]
    end = (node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
    return start <= (line, col) and (end_line, end_col) <= end


def _statements(tree: ast.AST) -> Iterator[ast.stmt]:
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and not isinstance(node, _COMPOUND):
            yield node


def _statement_at(tree: ast.Module, line: int) -> ast.stmt | None:
    found = [
        s
        for s in _statements(tree)
        if s.lineno <= line <= (s.end_lineno or s.lineno)  # type: ignore[operator]
    ]
    return min(found, key=lambda s: (s.end_lineno or 0) - s.lineno, default=None)


def _text(lines: list[str], node: ast.AST) -> str:
    """The source of an expression node (parenthesised when it spans several lines)."""
    return source._node_text(lines, node)


def _unwrapped(node: ast.expr, scope: dict[str, Any]) -> ast.expr:
    """``X`` of ``transform(X)``: the object a ``transform`` call wraps."""
    from padlc.language.atomic import transform

    if (
        isinstance(node, ast.Call)
        and len(node.args) == 1
        and not node.keywords
        and _evaluate(node.func, scope) is transform
    ):
        return node.args[0]
    return node


def _enclosing_function(tree: ast.Module, line: int) -> ast.AST | None:
    found = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        and n.lineno <= line <= (n.end_lineno or n.lineno)
    ]
    return max(found, key=lambda n: n.lineno, default=None)


def _own_nodes(body: list[ast.stmt]) -> Iterator[ast.AST]:
    """The nodes of ``body`` outside nested functions and classes."""
    stack: list[ast.AST] = list(reversed(body))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, _SCOPES):
            stack.extend(reversed(list(ast.iter_child_nodes(node))))


def _assignment(body: list[ast.stmt], name: str, before: int | None) -> ast.expr | None:
    """The value last assigned to ``name`` by ``name = ...`` in ``body`` (not in nested scopes),
    before line ``before`` when given."""
    value: ast.expr | None = None
    for node in _own_nodes(body):
        if before is not None and getattr(node, "lineno", 0) >= before:
            continue
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            assert isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None
            if value is None or node.lineno >= value.lineno:
                value = node.value
    return value


def _imported_from(body: list[ast.stmt], name: str) -> tuple[str, str] | None:
    """``(module, original name)`` when ``from module import original as name`` binds ``name``."""
    for node in _own_nodes(body):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return node.module, alias.name
    return None


def _cells() -> list[str]:
    """The IPython/Jupyter cells registered with ``linecache``, the latest last."""
    return [f for f in linecache.cache if f.startswith("<ipython-input-") or "ipykernel_" in f]


def of_variable(
    obj: Any,
    name: str,
    scope: dict[str, Any],
    depth: int = 0,
    site: tuple[str, int] | None = None,
) -> Lineage | None:
    """The expression last assigned to the module-level variable ``name`` of ``scope`` (a module's
    globals, or a notebook's), when it is ``obj``'s. ``site``: where the object was used
    (``transform(model)`` at ``file:line``); in that file the assignment before that line is the
    one that ran (a script may bind the name again further down, after the save)."""
    if scope.get(name) is not obj or depth > 3:
        return None
    filename = scope.get("__file__")
    files = [filename] if isinstance(filename, str) else list(reversed(_cells()))
    for file in files:
        lines, tree = source._file_tree(file)
        if tree is None:
            continue
        value = None
        if site is not None and site[0] == file:
            value = _assignment(tree.body, name, site[1])
        if value is None:
            value = _assignment(tree.body, name, None)
        if value is not None:
            value = _unwrapped(value, scope)
            if isinstance(value, ast.Name) and value.id != name:
                return of_variable(obj, value.id, scope, depth + 1)  # `model = net`
            return Lineage(_text(lines, value), scope, file, value.lineno, name)
        imported = _imported_from(tree.body, name)
        if imported is not None:  # `from models import model`: where it was made
            module = sys.modules.get(imported[0])
            if module is not None and not installed.is_installed_module(module.__name__):
                return of_variable(obj, imported[1], vars(module), depth + 1)
    return None


def at_site(
    obj: Any,
    filename: str,
    line: int,
    span: Position | None,
    scope: dict[str, Any],
    local: dict[str, Any] | None,
) -> Lineage | None:
    """The expression that made ``obj``, found from where ``transform(obj)`` (or an operator such
    as ``prepare >> obj``) ran: ``filename:line``, the instruction's ``span``, the frame's
    globals ``scope`` and, in a function, its locals ``local``."""
    lines, tree = source._file_tree(filename)
    if tree is None:
        return None
    statement = _statement_at(tree, line)
    if statement is None:
        return None
    names = {**scope, **(local or {})}
    region = [
        n
        for n in ast.walk(statement)
        if isinstance(n, ast.expr) and (span is None or _inside(n, span) or _covers(n, span))
    ]
    # `transform(X)` where X is an expression: X made the object
    wrapping = [
        n.args[0]
        for n in region
        if isinstance(n, ast.Call)
        and _unwrapped(n, names) is not n
        and (span is None or (_inside(n, span) and _covers(n, span)))
    ]
    candidates = wrapping or region
    variables = [
        n
        for n in candidates
        if isinstance(n, ast.Name | ast.Attribute) and _evaluate(n, names) is obj
    ]
    if variables:
        node = variables[0]
        if isinstance(node, ast.Name):
            if local is not None and node.id in local:
                function = _enclosing_function(tree, line)
                body = getattr(function, "body", [])
                value = _assignment(body, node.id, line)
                if value is None:
                    return None  # an argument of the function: made by its caller
                value = _unwrapped(value, names)
                return Lineage(_text(lines, value), names, filename, value.lineno, node.id)
            return of_variable(obj, node.id, scope, site=(filename, line))
        return None  # `models.encoder`: an attribute of another object
    inline = [n for n in wrapping if not isinstance(n, ast.Name | ast.Attribute)]
    if not inline:  # an operand made inline: `prepare >> nn.Linear(3, 4)`
        inline = [
            n for n in region if isinstance(n, ast.Call) and _evaluate(n.func, names) is type(obj)
        ]
    texts = {_text(lines, n) for n in inline}
    if len(texts) != 1:
        return None  # none, or several different ones: which made obj is not known
    return Lineage(texts.pop(), names, filename, inline[0].lineno, None)
