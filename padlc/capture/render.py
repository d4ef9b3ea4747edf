"""Rendering objects as Python source: the :class:`Renderer` behind :func:`padlc.capture.capture_pipeline`.

Objects are captured by identity and current value at save time: each object the pipeline reaches
becomes an expression or a named definition of the generated module. User code (scripts, notebook
cells, local modules) is copied in (:mod:`padlc.capture.definitions`); installed code is imported
(:mod:`padlc.capture.namespace`); data that source cannot rebuild is written beside the module as
JSON, ``.npy`` or safetensors (:mod:`padlc.capture.values`); transforms become padlc expressions
(:mod:`padlc.capture.expressions`).
"""

from __future__ import annotations

from padlc.capture.definitions import DefinitionRenderer
from padlc.capture.expressions import TransformRenderer, _hint
from padlc.capture.namespace import ADD, ATOM, DIV, SHIFT, UNARY
from padlc.capture.values import ValueRenderer

__all__ = ["ADD", "ATOM", "DIV", "SHIFT", "UNARY", "Renderer", "_hint"]


class Renderer(TransformRenderer, DefinitionRenderer, ValueRenderer):
    """Renders objects into one generated module.

    ``plain=False`` renders the lineage module (padlc language objects); ``plain=True`` renders plain
    Python for a build's stage module (no padlc import, no ``@transform``).
    """
