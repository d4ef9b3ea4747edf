"""The generated module being written: its names, definitions, imports and data files.

One :class:`GeneratedModule` is shared by the collaborators of a :class:`padlc.capture.render.Renderer`
(imports, values, definitions, transforms, instances): each adds to it, none owns a copy.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from padlc.capture.shared import SharedData
from padlc.errors import SaveError
from padlc.language.base import Transform
from padlc.language.markers import Batchify, Identity, Unbatchify
from padlc.language.sites import place
from padlc.naming import Namespace

__all__ = ["RESERVED", "SCALARS", "GeneratedModule", "describe"]

#: Names the generated modules bind themselves.
RESERVED = ("_pd_main", "_pd_extra_layers", "_pd_layers", "_pd_hooks", "_pd_weights_left_out")

SCALARS = (int, float, complex, str, bytes, bool, type(None))


def describe(t: Transform) -> str:
    """```name``` of a transform and where it was created, for messages."""
    location = t.__dict__.get("_pd_location")
    where = f" (created at {place(*location)})" if location else ""
    try:
        text = t._pd_short_repr()
    except Exception:
        text = type(t).__name__
    return f"`{text}`{where}"


@dataclass(frozen=True)
class _Checkpoint:
    definitions: int
    imports: frozenset[str]
    import_modules: frozenset[str]
    names: tuple[frozenset[str], dict[str, Any], dict[int, str]]
    layers: int
    functions: dict[int, tuple[str, bool]]
    factories: dict[str, str]


class GeneratedModule:
    """Names, definitions, imports and data files of one generated module.

    ``plain=False`` is the lineage module (padlc language objects); ``plain=True`` plain Python for
    a build's stage module (no padlc import, no ``@transform``). ``scopes`` are the user's global
    namespaces the pipeline was made in: their variable names name the generated module's
    bindings (``varnames``).
    """

    def __init__(
        self, root: Path, *, plain: bool, data_dir: str, scopes: list[dict[str, Any]]
    ) -> None:
        self.root = root
        self.plain = plain
        self.data_dir = data_dir
        self.scopes = scopes
        self.names = Namespace(RESERVED)
        self.imports: set[str] = set()
        self.import_modules: set[str] = set()
        self.definitions: list[str] = []
        self.data_files = Namespace()  # file names under data_dir
        #: Set by a build: data files identical to ones another module of the artifact wrote are
        #: stored once (see padlc.capture.shared).
        self.shared: SharedData | None = None
        self.layers: list[torch.nn.Module] = []
        self.hoist: set[int] = set()
        #: ids of objects being bound to a module-level name right now (``X = <value of X>``)
        self.binding: set[int] = set()
        self.where: list[str] = []
        self.transforms: list[Transform] = []  # the pipeline's transforms (for `t - 'name'`)
        self.varnames: dict[int, str] = {}
        #: user functions defined so far: id -> (expression, already a transform)
        self.functions: dict[int, tuple[str, bool]] = {}
        #: closure factories defined so far: source and cell names -> factory name
        self.factories: dict[str, str] = {}
        for scope in scopes:
            for key, value in list(scope.items()):
                if (
                    not key.startswith("_")
                    and type(value) not in SCALARS
                    and not isinstance(value, types.ModuleType | Identity | Batchify | Unbatchify)
                ):
                    self.varnames.setdefault(id(value), key)

    # -- names -----------------------------------------------------------------------------
    def claim(self, preferred: str, obj: Any) -> str:
        """A new module-level name for ``obj`` (``preferred`` when free)."""
        return self.names.create(preferred, obj)

    def name_of(self, obj: Any) -> str | None:
        return self.names.name_of(obj)

    def define(self, text: str) -> None:
        """Append a definition (statements at module level) to the module."""
        self.definitions.append(text.rstrip() + "\n")

    def register_layer(self, layer: torch.nn.Module) -> None:
        """``layer``'s weights are saved with the module."""
        if all(existing is not layer for existing in self.layers):
            self.layers.append(layer)

    def checkpoint(self) -> _Checkpoint:
        """What :meth:`restore` goes back to: a way of saving an object that fails half-way
        leaves no code, names or layers behind."""
        return _Checkpoint(
            len(self.definitions),
            frozenset(self.imports),
            frozenset(self.import_modules),
            self.names.snapshot(),
            len(self.layers),
            dict(self.functions),
            dict(self.factories),
        )

    def restore(self, checkpoint: _Checkpoint) -> None:
        del self.definitions[checkpoint.definitions :]
        self.imports.intersection_update(checkpoint.imports)
        self.import_modules.intersection_update(checkpoint.import_modules)
        self.names.restore(checkpoint.names)
        del self.layers[checkpoint.layers :]
        self.functions = dict(checkpoint.functions)
        self.factories = dict(checkpoint.factories)

    # -- messages --------------------------------------------------------------------------
    @contextmanager
    def within(self, what: str) -> Iterator[None]:
        """Errors raised inside name ``what`` as the user of the object being saved."""
        self.where.append(what)
        try:
            yield
        finally:
            self.where.pop()

    def error(self, message: str) -> SaveError:
        where = f" It is used by {self.where[-1]}." if self.where else ""
        return SaveError(message + where)
