"""Code generation: the CPU stages of a pipeline as one straight-line Python module.

View models (:mod:`padlc.codegen.view`) are built from the IR (:mod:`padlc.codegen.emit`) and
rendered with Jinja templates (:mod:`padlc.codegen.render`); expressions are built with ``ast``.
"""

from padlc.codegen.emit import StageSpec, emit_module
from padlc.codegen.render import environment, register_source, render_module
from padlc.codegen.view import FunctionView, ModuleView, NamedTupleView

__all__ = [
    "FunctionView",
    "ModuleView",
    "NamedTupleView",
    "StageSpec",
    "emit_module",
    "environment",
    "register_source",
    "render_module",
]
