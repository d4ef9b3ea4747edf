"""The plain view models the templates render: strings and lists, no IR, no torch."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FunctionView", "ModuleView", "NamedTupleView"]


@dataclass(frozen=True, slots=True)
class FunctionView:
    """``def name(params): body``; an empty body renders ``name = None`` (a stage that is absent)."""

    name: str
    params: str
    body: tuple[str, ...]
    doc: str = ""


@dataclass(frozen=True, slots=True)
class NamedTupleView:
    name: str
    fields: str  # a Python list literal of the field names


@dataclass(frozen=True, slots=True)
class ModuleView:
    header: tuple[str, ...]
    docstring: str
    imports: tuple[str, ...]
    namedtuples: tuple[NamedTupleView, ...] = ()
    helpers: tuple[FunctionView, ...] = ()
    functions: tuple[FunctionView, ...] = field(default_factory=tuple)
    #: the layers ``to_device(device)`` moves (an eager forward's); none: no such function
    device_layers: tuple[str, ...] = ()
