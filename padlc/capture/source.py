"""Finding the source of user functions, lambdas and classes, and the global names it uses.

Everything here runs at save time from objects (code objects, ``linecache``), never from frames
recorded at creation time. Works for script files, importable modules and IPython/Jupyter cells
(whose source IPython registers with ``linecache``).
"""

from __future__ import annotations

import ast
import inspect
import linecache
import symtable
import textwrap
import types
from dataclasses import dataclass

from padlc.errors import SaveError

__all__ = ["Snippet", "class_snippet", "function_snippet", "global_names", "replace_segments"]


@dataclass(frozen=True)
class Snippet:
    """Dedented source of one definition, and its AST node (a def, a class or a lambda)."""

    source: str
    node: ast.AST
    filename: str
    line: int


def _file_tree(filename: str) -> tuple[list[str], ast.Module | None]:
    lines = linecache.getlines(filename)
    if not lines:
        return [], None
    try:
        return lines, ast.parse("".join(lines))
    except (SyntaxError, ValueError):
        return lines, None


def _segment(lines: list[str], first: int, last: int) -> str:
    return textwrap.dedent("".join(lines[first - 1 : last]))


def _no_source(what: str, filename: str) -> SaveError:
    return SaveError(
        f"The source of {what} is not available (it was defined in {filename!r}, e.g. the plain "
        "`python` prompt or an exec'd string), so it cannot be saved with its code. Define it in "
        "a script, a module of your project, or a Jupyter/IPython cell."
    )


def _parse_snippet(source: str, filename: str, line: int, what: str) -> Snippet:
    try:
        module = ast.parse(source)
    except SyntaxError as exc:
        raise SaveError(
            f"Could not parse the source of {what} ({filename}:{line}): {exc}."
        ) from exc
    return Snippet(source, module.body[0], filename, line)


def function_snippet(fn: types.FunctionType) -> Snippet:
    """The ``def`` (with its decorators) or the ``lambda`` expression that made ``fn``."""
    code = fn.__code__
    filename, first = code.co_filename, code.co_firstlineno
    what = f"function {fn.__qualname__}"
    lines, tree = _file_tree(filename)
    if not lines:
        raise _no_source(what, filename)
    if code.co_name == "<lambda>":
        return _lambda_snippet(code, lines, tree, what)
    if tree is not None:
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and node.name == code.co_name
            ):
                start = min([d.lineno for d in node.decorator_list] + [node.lineno])
                if start == first or node.lineno == first:
                    text = _segment(lines, start, node.end_lineno or node.lineno)
                    return _parse_snippet(text, filename, start, what)
    try:
        text = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as exc:
        raise _no_source(what, filename) from exc
    return _parse_snippet(text, filename, first, what)


def _positions(code: types.CodeType) -> list[tuple[int, int, int, int]]:
    found = []
    for pos in getattr(code, "co_positions", lambda: [])():
        if None not in pos and pos[:2] != pos[2:] and (pos[0], pos[2]) != (pos[1], pos[3]):
            found.append(pos)  # (line, end_line, col, end_col)
    return found


def _contains(node: ast.AST, pos: tuple[int, int, int, int], byte_lines: list[bytes]) -> bool:
    line, end_line, col, end_col = pos
    start = (node.lineno, node.col_offset)  # type: ignore[attr-defined]
    end = (node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
    return start <= (line, col) and (end_line, end_col) <= end  # type: ignore[operator]


def _lambda_snippet(
    code: types.CodeType, lines: list[str], tree: ast.Module | None, what: str
) -> Snippet:
    """The exact ``lambda`` among several on the same line(s): matched on the code's column
    positions (3.11+), else on its arguments and constants."""
    filename, first = code.co_filename, code.co_firstlineno
    candidates: list[ast.Lambda] = []
    if tree is not None:
        candidates = [n for n in ast.walk(tree) if isinstance(n, ast.Lambda) and n.lineno == first]
    if not candidates:
        raise _no_source(f"the lambda at line {first}", filename)
    byte_lines = [ln.encode() for ln in lines]
    positions = [p for p in _positions(code) if p[0] >= first]
    chosen: ast.Lambda | None = None
    if positions:
        fitting = [c for c in candidates if all(_contains(c, p, byte_lines) for p in positions)]
        if fitting:  # the innermost lambda whose body spans all the code's positions
            chosen = min(fitting, key=_span)
    if chosen is None:
        names = list(code.co_varnames[: code.co_argcount + code.co_kwonlyargcount])
        same_args = [
            c
            for c in candidates
            if [a.arg for a in c.args.posonlyargs + c.args.args + c.args.kwonlyargs] == names
        ]
        if len(same_args) == 1 or (same_args and len({ast.dump(c) for c in same_args}) == 1):
            chosen = same_args[0]
    if chosen is None:
        raise SaveError(
            f"Could not tell which lambda on line {first} of {filename} is {what}. Give it a name "
            "with `def`."
        )
    text = _node_text(lines, chosen)
    return _parse_expression(text, filename, first, what)


def _span(node: ast.AST) -> tuple[int, int]:
    return (
        (node.end_lineno or 0) - node.lineno,  # type: ignore[attr-defined]
        (node.end_col_offset or 0) - node.col_offset,  # type: ignore[attr-defined]
    )


def _node_text(lines: list[str], node: ast.AST) -> str:
    start, end = node.lineno, node.end_lineno or node.lineno  # type: ignore[attr-defined]
    chunk = [ln.encode() for ln in lines[start - 1 : end]]
    if len(chunk) == 1:
        return chunk[0][node.col_offset : node.end_col_offset].decode()  # type: ignore[attr-defined]
    chunk[0] = chunk[0][node.col_offset :]  # type: ignore[attr-defined]
    chunk[-1] = chunk[-1][: node.end_col_offset]  # type: ignore[attr-defined]
    return "(" + b"".join(chunk).decode() + ")"


def _parse_expression(text: str, filename: str, line: int, what: str) -> Snippet:
    try:
        expr = ast.parse(text, mode="eval").body
    except SyntaxError as exc:
        raise SaveError(
            f"Could not parse the source of {what} ({filename}:{line}): {exc}."
        ) from exc
    return Snippet(text, expr, filename, line)


def class_snippet(cls: type) -> Snippet:
    """The ``class`` statement of ``cls``, found through its methods' code objects (works for
    classes defined in notebook cells, where ``inspect.getsource`` fails)."""
    what = f"class {cls.__qualname__}"
    codes = []
    for attribute in vars(cls).values():
        fn = getattr(attribute, "__func__", attribute)
        fn = getattr(fn, "fget", fn)
        code = getattr(fn, "__code__", None)
        if isinstance(code, types.CodeType):
            codes.append(code)
    for code in codes:
        lines, tree = _file_tree(code.co_filename)
        if tree is None:
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ClassDef)
                and node.name == cls.__name__
                and node.lineno <= code.co_firstlineno <= (node.end_lineno or 0)
            ):
                start = min([d.lineno for d in node.decorator_list] + [node.lineno])
                text = _segment(lines, start, node.end_lineno or node.lineno)
                return _parse_snippet(text, code.co_filename, start, what)
    if not codes and cls.__module__ == "__main__":
        found = _cell_class(cls)
        if found is not None:
            return _parse_snippet(found[2], found[0], found[1], what)
    try:
        text = textwrap.dedent(inspect.getsource(cls))
        filename = inspect.getsourcefile(cls) or "<unknown>"
    except (OSError, TypeError) as exc:
        where = codes[0].co_filename if codes else getattr(cls, "__module__", "?")
        raise _no_source(what, where) from exc
    return _parse_snippet(text, filename, 0, what)


def _cell_class(cls: type) -> tuple[str, int, str] | None:
    """``(cell, line, source)`` of a class without methods defined in an IPython/Jupyter cell:
    no code object points at its cell, so the cells IPython registered with ``linecache`` are
    searched, the latest first, for a top-level ``class`` statement of that name whose assigned
    names the class has."""
    for filename in reversed(list(linecache.cache)):
        if not (filename.startswith("<ipython-input-") or "ipykernel_" in filename):
            continue
        lines, tree = _file_tree(filename)
        if tree is None:
            continue
        for node in reversed(tree.body):
            if not isinstance(node, ast.ClassDef) or node.name != cls.__name__:
                continue
            assigned = {
                target.id
                for statement in node.body
                if isinstance(statement, ast.Assign)
                for target in statement.targets
                if isinstance(target, ast.Name)
            }
            if not assigned <= set(vars(cls)):
                continue
            start = min([d.lineno for d in node.decorator_list] + [node.lineno])
            return filename, start, _segment(lines, start, node.end_lineno or node.lineno)
    return None


def set_after(
    cls: type, snippet: Snippet, wrapper: type | None = None
) -> list[tuple[str, types.FunctionType]]:
    """Methods of ``cls`` that its ``class`` statement does not define: set on the class afterwards
    (``Scaler.__call__ = other``, a notebook cell patching a class). Saved from its source, the
    class would not have them. Not counted: names the body assigns (``pre = staticmethod(f)``),
    decorated ``def``s (their wrapper may live anywhere) and functions without source (made by
    ``@dataclass``) and functions of other modules (what ``Enum`` adds). ``wrapper``, the transform class ``@transform`` made of ``cls``, defines no
    function of its own: any there was set afterwards (``Scaler.__call__ = f`` sets it there)."""
    found = [
        (name, value)
        for name, value in (vars(wrapper).items() if wrapper is not None else ())
        if isinstance(value, types.FunctionType)
    ]
    node = snippet.node
    if not isinstance(node, ast.ClassDef):
        return []
    assigned: set[str] = set()
    decorated: set[str] = set()
    for statement in node.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            if statement.decorator_list:
                decorated.add(statement.name)
        elif isinstance(statement, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            assigned.update(t.id for t in targets if isinstance(t, ast.Name))
    for name, value in vars(cls).items():
        fn = getattr(value, "__func__", getattr(value, "fget", value))
        if not isinstance(fn, types.FunctionType) or name in assigned or name in decorated:
            continue
        if fn.__module__ != cls.__module__:
            continue  # machinery of a base or a library (Enum's _generate_next_value_)
        filename = fn.__code__.co_filename
        if filename not in linecache.cache and not _readable(filename):
            continue  # generated code (a dataclass's __init__)
        if fn.__qualname__.startswith(cls.__qualname__ + "."):
            continue  # made for this class: in its body, or by a decorator (a dataclass's repr)
        found.append((name, fn))
    return found


def _readable(filename: str) -> bool:
    try:
        with open(filename, encoding="utf-8"):
            return True
    except OSError:
        return False


def global_names(source: str) -> list[str]:
    """Names a snippet reads from its module's globals (or from enclosing functions), sorted.

    Names the snippet binds itself at the top (the def/class name) are left out.
    """
    try:
        table = symtable.symtable(source, "<padlc>", "exec")
    except SyntaxError:
        return []
    names: set[str] = set()
    own: set[str] = set()

    def visit(t: symtable.SymbolTable, top: bool) -> None:
        for symbol in t.get_symbols():
            name = symbol.get_name()
            if top:
                if symbol.is_assigned() or symbol.is_imported():
                    own.add(name)
                if symbol.is_referenced():
                    names.add(name)
            # free names are bound by an enclosing def of the snippet. `is_local` too: CPython's
            # symtable takes any table named "top" for the module, so the locals of a function
            # called `top` report is_global() (fixed in later CPythons).
            elif symbol.is_global() and not symbol.is_local():
                names.add(name)
        for child in t.get_children():
            visit(child, False)

    visit(table, True)
    return sorted(names - own)


def annotation_names(node: ast.AST) -> set[str]:
    """Names that appear only inside annotations (safe to skip when they cannot be resolved)."""
    inside: set[str] = set()
    outside: set[str] = set()
    annotations: list[ast.AST] = []
    for n in ast.walk(node):
        if isinstance(n, ast.arg) and n.annotation is not None:
            annotations.append(n.annotation)
        elif isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.returns is not None:
            annotations.append(n.returns)
        elif isinstance(n, ast.AnnAssign):
            annotations.append(n.annotation)
    annotation_ids = {id(x) for a in annotations for x in ast.walk(a)}
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            (inside if id(n) in annotation_ids else outside).add(n.id)
    return inside - outside


def replace_segments(source: str, replacements: list[tuple[ast.AST, str]]) -> str:
    """``source`` with the text of each AST node replaced (nodes from ``ast.parse(source)``)."""
    lines = source.splitlines(keepends=True)
    byte_lines = [ln.encode() for ln in lines]
    ordered = sorted(
        replacements,
        key=lambda r: (r[0].lineno, r[0].col_offset),  # type: ignore[attr-defined]
        reverse=True,
    )
    for node, text in ordered:
        start, end = node.lineno - 1, (node.end_lineno or node.lineno) - 1  # type: ignore[attr-defined]
        head = byte_lines[start][: node.col_offset]  # type: ignore[attr-defined]
        tail = byte_lines[end][node.end_col_offset :]  # type: ignore[attr-defined]
        byte_lines[start : end + 1] = [head + text.encode() + tail]
    return b"".join(byte_lines).decode()


def rename(snippet_source: str, mapping: dict[str, str]) -> str:
    """Rename global names (``Name`` nodes and the top def/class name) in a snippet."""
    if not mapping:
        return snippet_source
    tree = ast.parse(snippet_source)
    edits: list[tuple[ast.AST, str]] = [
        (n, mapping[n.id]) for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in mapping
    ]
    text = replace_segments(snippet_source, edits)
    top = tree.body[0] if tree.body else None
    if (
        isinstance(top, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and top.name in mapping
    ):
        import re

        keyword = "class" if isinstance(top, ast.ClassDef) else "def"
        text = re.sub(
            rf"\b{keyword}(\s+){top.name}\b", rf"{keyword}\g<1>{mapping[top.name]}", text, count=1
        )
    return text


def decorator_source(node: ast.AST, snippet: str) -> list[tuple[ast.expr, str]]:
    lines = snippet.splitlines(keepends=True)
    return [(d, _node_text(lines, d)) for d in getattr(node, "decorator_list", [])]


def strip_decorators(snippet: Snippet, drop: list[ast.expr]) -> str:
    """The snippet without the given decorator lines."""
    if not drop:
        return snippet.source
    lines = snippet.source.splitlines(keepends=True)
    remove: set[int] = set()
    for d in drop:
        for ln in range(d.lineno, (d.end_lineno or d.lineno) + 1):
            remove.add(ln)
    return "".join(ln for i, ln in enumerate(lines, 1) if i not in remove)
