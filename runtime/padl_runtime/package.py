"""Importing an artifact's Python files (generated stage module, captured code) as one package.

The artifact directory is registered under a fresh package name, so its modules import each other
relatively (``from .stage_code import tokenize``) and two artifacts never collide. Nothing is added
to ``sys.path``. Each module's source is registered with :mod:`linecache`, so a traceback through
generated code shows the generated line even if the artifact is moved or deleted afterwards.
"""

from __future__ import annotations

import importlib
import linecache
import sys
import types
import uuid
from pathlib import Path
from typing import Any

from padl_runtime.errors import ArtifactError

__all__ = ["ArtifactPackage", "StageFunction"]


class ArtifactPackage:
    """The artifact at ``root`` as an importable package (created on first use)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.name = f"_padl_artifact_{uuid.uuid4().hex[:12]}"
        package = types.ModuleType(self.name)
        package.__path__ = [str(self.root)]  # type: ignore[attr-defined]
        package.__file__ = None
        sys.modules[self.name] = package

    def module(self, relative: str) -> types.ModuleType:
        """Import ``relative`` (a path such as ``stages.py`` or ``forward/eager.py``)."""
        dotted = relative.removesuffix(".py").replace("/", ".")
        try:
            module = importlib.import_module(f"{self.name}.{dotted}")
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if missing.startswith(self.name):
                inner = missing.removeprefix(self.name + ".").replace(".", "/") + ".py"
                raise ArtifactError(
                    f"{self.root}: {inner} (imported by {relative}) is missing from the artifact.",
                    path=str(self.root),
                    file=relative,
                ) from exc
            raise ArtifactError(
                f"{self.root}: {relative} imports {missing!r}, which is not installed. Install "
                f"the artifact's requirements: pip install -r {self.root / 'requirements.txt'}",
                path=str(self.root),
                file=relative,
            ) from exc
        filename = getattr(module, "__file__", None)
        if filename:
            source = Path(filename).read_text(encoding="utf-8")
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        return module

    def function(self, relative: str, name: str) -> Any:
        return getattr(self.module(relative), name)


class StageFunction:
    """A function of an artifact's module that pickles by reference to the artifact (for
    DataLoader workers started with ``spawn``): the worker imports the artifact again."""

    __slots__ = ("fn", "name", "relative", "root")

    def __init__(self, package: ArtifactPackage, relative: str, name: str) -> None:
        self.root = str(package.root)
        self.relative = relative
        self.name = name
        self.fn = package.function(relative, name)

    def __call__(self, value: Any) -> Any:
        return self.fn(value)

    def __reduce__(self) -> Any:
        return (_reload, (self.root, self.relative, self.name))


def _reload(root: str, relative: str, name: str) -> StageFunction:
    return StageFunction(ArtifactPackage(root), relative, name)
