"""Rendering objects as Python source: the :class:`Renderer` behind :func:`padlc.capture.capture_pipeline`.

Objects are captured by identity and current value at save time: each object the pipeline reaches
becomes an expression or a named definition of one generated module
(:class:`~padlc.capture.module.GeneratedModule`, the namespace every collaborator shares). The
collaborators each hold one concept and call each other through the renderer:

- :class:`~padlc.capture.imports.Imports`: installed modules and objects are imported;
- :class:`~padlc.capture.values.Values`: data inline, or as JSON, ``.npy`` or safetensors files;
- :class:`~padlc.capture.definitions.Definitions`: user code (scripts, notebook cells, local
  modules) copied in with the globals it reads;
- :class:`~padlc.capture.expressions.Transforms`: transforms as padlc expressions;
- :class:`~padlc.capture.instances.Instances`: instances of classes and torch layers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from padlc.capture.definitions import Definitions
from padlc.capture.expressions import Transforms
from padlc.capture.imports import Imports
from padlc.capture.instances import Instances
from padlc.capture.module import GeneratedModule
from padlc.capture.values import Values

__all__ = ["Renderer"]


class Renderer:
    """Renders objects into one generated module.

    ``plain=False`` renders the lineage module (padlc language objects); ``plain=True`` renders plain
    Python for a build's stage module (no padlc import, no ``@transform``).
    """

    def __init__(
        self, root: Path, *, plain: bool, data_dir: str, scopes: list[dict[str, Any]]
    ) -> None:
        self.module = GeneratedModule(root, plain=plain, data_dir=data_dir, scopes=scopes)
        self.imports = Imports(self.module)
        self.values = Values(self)
        self.definitions = Definitions(self)
        self.transforms = Transforms(self)
        self.instances = Instances(self)
