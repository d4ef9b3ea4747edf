"""An artifact's Python files (generated stage module, captured code) executed as one package.

Each module is compiled from the verified bytes :class:`~padl_runtime.artifact.Artifact` read
(never imported from the directory, so no ``.pyc`` is read or written and no file the manifest
does not list is used), behind an ``importlib`` loader, as ``torch.fx`` does for its generated
code: each module's source is registered with :mod:`linecache`, so a traceback through it shows the
line that ran, and ``inspect.getsource`` works, even if the artifact is edited or deleted later.

The modules import each other relatively (``from .stage_code import tokenize``); those imports are
resolved to the artifact's own listed files before a module runs, never to a package
``__init__.py``. A fresh package name keeps two artifacts apart, and nothing is added to
``sys.path``. ``sys.modules`` holds only weak references to the modules (which pickle and relative
imports look up by name): once nothing of a loaded artifact is in use, its modules, weights and
``sys.modules`` entries are freed.
"""

from __future__ import annotations

import ast
import importlib.abc
import importlib.machinery
import importlib.util
import linecache
import sys
import types
import uuid
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from padl_runtime.artifact import Artifact, reading
from padl_runtime.errors import ArtifactError

__all__ = ["ArtifactPackage", "Files", "StageFunction"]


class Files(Protocol):
    """Where the package's files come from: an :class:`Artifact` (verified) or a directory padlc
    is writing (:class:`~padl_runtime.artifact.DirectoryFiles`)."""

    root: Path

    def read(self, relative: str, *, needed_by: str = "", keep: bool = True) -> bytes: ...


class ArtifactPackage:
    """The Python files of ``files`` as a package named ``_padl_artifact_<id>`` (modules are
    executed on first use)."""

    def __init__(self, files: Files) -> None:
        self.files = files
        self.root = files.root
        self.name = f"_padl_artifact_{uuid.uuid4().hex[:12]}"
        self._loader = _Loader(self)
        self._loader.package(self.name)

    @property
    def manifest_sha256(self) -> str | None:
        return getattr(self.files, "manifest_sha256", None)

    def module(self, relative: str) -> types.ModuleType:
        """Execute (once) and return the module of the listed file ``relative`` (``stages.py``,
        ``forward/eager.py``)."""
        if not relative.endswith(".py"):
            raise ArtifactError(
                f"{self.root}: {relative!r} is not a Python file (.py).",
                path=str(self.root),
                file=relative,
            )
        return self._loader.load(self._dotted(relative), relative, relative)

    def function(self, relative: str, name: str) -> Any:
        return getattr(self.module(relative), name)

    def _dotted(self, relative: str) -> str:
        return f"{self.name}.{relative.removesuffix('.py').replace('/', '.')}"


class _Loader(importlib.abc.InspectLoader):
    """Executes the package's modules from verified bytes; holds them (``sys.modules`` refers to
    them only weakly, through :class:`_Reference`)."""

    def __init__(self, package: ArtifactPackage) -> None:
        self.files = package.files
        self.prefix = package.name
        self.root = package.root
        self.modules: dict[str, types.ModuleType] = {}
        self.sources: dict[str, str] = {}
        self.filenames: dict[str, str] = {}
        self._registered: list[tuple[str, types.ModuleType]] = []
        self._lines: list[tuple[str, Any]] = []
        weakref.finalize(self, _forget, self._registered, self._lines)

    # -- importlib's loader protocol --------------------------------------------------------------
    def get_source(self, fullname: str) -> str | None:
        return self.sources.get(fullname)

    def is_package(self, fullname: str) -> bool:
        return fullname in self.modules and fullname not in self.sources

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:  # pragma: no cover - see load()
        raise ImportError(f"{module.__name__} is executed by padl_runtime, not imported")

    # -- executing --------------------------------------------------------------------------------
    def package(self, fullname: str) -> types.ModuleType:
        """The (empty) package ``fullname`` and its parents: namespaces, never an ``__init__.py``."""
        existing = self.modules.get(fullname)
        if existing is not None:
            return existing
        spec = importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        spec.submodule_search_locations = []
        module = importlib.util.module_from_spec(spec)
        module.__path__ = []  # type: ignore[attr-defined]
        self._add(fullname, module)
        self._register(fullname, _Reference(fullname, self))
        return module

    def load(self, fullname: str, relative: str, needed_by: str) -> types.ModuleType:
        existing = self.modules.get(fullname)
        if existing is not None:
            return existing
        data = self.files.read(relative, needed_by=needed_by)
        try:
            source = data.decode("utf-8")
            code = compile(source, str(self.root / relative), "exec", dont_inherit=True)
        except (UnicodeDecodeError, SyntaxError, ValueError) as exc:
            raise ArtifactError(
                f"{self.root}: {relative} is not valid Python ({exc}).",
                path=str(self.root),
                file=relative,
            ) from exc
        filename = code.co_filename
        self.sources[fullname] = source
        self.filenames[fullname] = filename
        entry = (len(source), None, source.splitlines(True), filename)
        linecache.cache[filename] = entry
        self._lines.append((filename, entry))
        spec = importlib.machinery.ModuleSpec(fullname, self, origin=filename)
        spec.has_location = True
        module = importlib.util.module_from_spec(spec)
        module.__file__ = filename
        self._add(fullname, module)
        sys.modules[fullname] = module  # the real module while it runs (dataclasses look it up)
        try:
            for target, target_relative in self._relative_imports(fullname, source, relative):
                self.load(target, target_relative, relative)
            with reading(self.files if isinstance(self.files, Artifact) else None):
                exec(code, module.__dict__)
        except ModuleNotFoundError as exc:
            del self.modules[fullname]
            sys.modules.pop(fullname, None)
            raise ArtifactError(
                f"{self.root}: {relative} imports {exc.name!r}, which is not installed. Install "
                f"the artifact's requirements: pip install -r {self.root / 'requirements.txt'}",
                path=str(self.root),
                file=relative,
            ) from exc
        except BaseException:
            del self.modules[fullname]
            sys.modules.pop(fullname, None)
            raise
        self._register(fullname, _Reference(fullname, self))
        return module

    def _add(self, fullname: str, module: types.ModuleType) -> None:
        self.modules[fullname] = module
        parent, _, child = fullname.rpartition(".")
        if parent.startswith(self.prefix):
            setattr(self.package(parent), child, module)

    def _register(self, fullname: str, reference: types.ModuleType) -> None:
        sys.modules[fullname] = reference
        self._registered.append((fullname, reference))

    def _relative_imports(self, fullname: str, source: str, relative: str) -> list[tuple[str, str]]:
        """The artifact's modules that ``source`` imports relatively, as (name, listed path)."""
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):  # pragma: no cover - compile() accepted it
            return []
        base_parts = fullname.split(".")[:-1]
        found: list[tuple[str, str]] = []
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or not node.level:
                continue
            if node.level > len(base_parts):
                raise ArtifactError(
                    f"{self.root}: {relative} line {node.lineno} imports from outside the "
                    "artifact (a relative import beyond its top level).",
                    path=str(self.root),
                    file=relative,
                )
            base = base_parts[: len(base_parts) - node.level + 1]
            if len(base) < 1 or base[0] != self.prefix:
                raise ArtifactError(
                    f"{self.root}: {relative} line {node.lineno} imports from outside the "
                    "artifact.",
                    path=str(self.root),
                    file=relative,
                )
            names: Sequence[str] = (
                [node.module] if node.module else [alias.name for alias in node.names]
            )
            for name in names:
                target = ".".join([*base, name])
                path = "/".join([*base[1:], *name.split(".")]) + ".py"
                if node.module is None and not _listed(self.files, path):
                    continue  # `from . import x` of a name that is not a module
                found.append((target, path))
        return found


def _listed(files: Files, relative: str) -> bool:
    if isinstance(files, Artifact):
        return relative in files.manifest.listed()
    return (files.root / relative).is_file()


class _Reference(types.ModuleType):
    """What ``sys.modules`` holds for an artifact's module: attribute lookups go to the module
    while the artifact is in use, without keeping it alive."""

    def __init__(self, name: str, loader: _Loader) -> None:
        super().__init__(name)
        self.__dict__["_padl_loader"] = weakref.ref(loader)

    def __getattr__(self, attribute: str) -> Any:
        loader = self.__dict__["_padl_loader"]()
        module = None if loader is None else loader.modules.get(self.__name__)
        if module is None:
            raise AttributeError(
                f"module {self.__name__!r} of a padl artifact is no longer loaded ({attribute!r})"
            )
        return getattr(module, attribute)


def _forget(registered: list[tuple[str, types.ModuleType]], lines: list[tuple[str, Any]]) -> None:
    """Once the loaded modules are gone: their ``sys.modules`` entries and cached source."""
    for name, reference in registered:
        if sys.modules.get(name) is reference:
            del sys.modules[name]
    for filename, entry in lines:
        if linecache.cache.get(filename) is entry:
            del linecache.cache[filename]


class StageFunction:
    """A function of an artifact's module that pickles by reference to the artifact (for
    DataLoader workers started with ``spawn``): the worker reads the artifact again, and runs it
    only if its manifest is still the one loaded here (so the same verified bytes)."""

    __slots__ = ("fn", "manifest_sha256", "name", "relative", "root")

    def __init__(self, package: ArtifactPackage, relative: str, name: str) -> None:
        self.root = str(package.root)
        self.manifest_sha256 = package.manifest_sha256
        self.relative = relative
        self.name = name
        self.fn = package.function(relative, name)

    def __call__(self, value: Any) -> Any:
        return self.fn(value)

    def __reduce__(self) -> Any:
        if self.manifest_sha256 is None:
            raise TypeError(
                f"{self.name} of {self.root} is not from a verified artifact: it cannot be sent to "
                "a worker process."
            )
        return (_reload, (self.root, self.manifest_sha256, self.relative, self.name))


def _reload(root: str, manifest_sha256: str, relative: str, name: str) -> StageFunction:
    return StageFunction(ArtifactPackage(Artifact.reopen(root, manifest_sha256)), relative, name)
