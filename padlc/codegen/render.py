"""Rendering view models with Jinja, checking the result compiles, registering it with linecache."""

from __future__ import annotations

import linecache
from functools import cache

import jinja2

from padlc.codegen.view import ModuleView
from padlc.errors import BuildError

__all__ = ["environment", "register_source", "render_module"]


@cache
def environment() -> jinja2.Environment:
    """The one Jinja environment: templates from the package, undefined variables are errors."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("padlc.codegen", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render_module(view: ModuleView, filename: str = "<generated>") -> str:
    """The module's source; ``BuildError`` if it does not compile (a bug in padlc, reported as such)."""
    source = environment().get_template("module.py.jinja").render(module=view)
    source = "\n".join(line.rstrip() for line in source.splitlines()).strip("\n") + "\n"
    while "\n\n\n\n" in source:
        source = source.replace("\n\n\n\n", "\n\n\n")
    try:
        compile(source, filename, "exec")
    except SyntaxError as exc:  # pragma: no cover - ast-built code is valid; this guards templates
        raise BuildError(
            f"padlc generated invalid Python for {filename} (line {exc.lineno}: {exc.msg}). This "
            "is a bug in padlc; please report it with the pipeline."
        ) from exc
    return source


def register_source(filename: str, source: str) -> None:
    """Make tracebacks through generated code show its lines even when the file is gone."""
    lines = source.splitlines(keepends=True)
    linecache.cache[filename] = (len(source), None, lines, filename)
