"""Forward loaders, one module per backend, chosen through :data:`LOADERS` (no if-chains).

Each loader says what loading its files executes (:data:`padl_runtime.trust.Executes`:
``nothing`` for data and torch's own program formats, ``python``, ``native``), which the trust check
reads; it loads the verified bytes :class:`~padl_runtime.artifact.Artifact` reads, never a path.

Each loader returns a *flat* forward: N tensors in, a tuple of tensors out (see
:mod:`padl_runtime.treespec`), except ``eager`` which runs the generated Python forward on the
nested batch; :class:`padl_runtime.pipeline.CompiledPipeline` hides the difference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from padl_runtime.artifact import Artifact
from padl_runtime.manifest import BackendEntry
from padl_runtime.trust import Executes

__all__ = ["LOADERS", "LoadedForward", "Loader", "register"]


@dataclass(frozen=True, slots=True)
class LoadedForward:
    """A forward ready to run. ``flat``: takes and returns flat tensors (else the nested batch).
    ``fixed_shapes``: compiled for the input shapes in the manifest, the batch axis excepted (the
    runtime checks them: such a forward may not check, and then computes garbage on others)."""

    fn: Callable[..., Any]
    flat: bool = True
    fixed_shapes: bool = False


class Loader(Protocol):
    name: str
    #: what loading this backend's files runs (the trust check reads it)
    executes: Executes

    def unavailable(self, entry: BackendEntry, device: str) -> str | None:
        """Why this backend cannot run here (``None``: it can)."""

    def load(
        self, artifact: Artifact, entry: BackendEntry, device: str, package: Any
    ) -> LoadedForward: ...


LOADERS: dict[str, Loader] = {}


def register(loader: Loader) -> Loader:
    LOADERS[loader.name] = loader
    return loader


def _load_all() -> None:
    from padl_runtime.backends import aoti, eager, export, onnx, torchscript  # noqa: F401


_load_all()
