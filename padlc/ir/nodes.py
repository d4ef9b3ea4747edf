"""The IR's node kinds: a small, fixed vocabulary of frozen dataclasses.

A pipeline is traced (:mod:`padlc.ir.trace`) into a tree of these nodes. Every node keeps the source
location of the transform it came from (``_pd_location``: file and line), so errors found while
lowering or generating code can name the user's line. Nodes are immutable; passes return new trees.

Leaves keep a reference to the transform they came from (``transform``, excluded from comparison)
because lowering and code generation need the user's callable itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from padlc.language.operations import CallValue, GetAttr, GetItem, Operation

__all__ = [
    "Attr",
    "Batch",
    "Call",
    "CallValue",
    "GetAttr",
    "GetItem",
    "Identity",
    "Map",
    "Node",
    "Operation",
    "Parallel",
    "Rollout",
    "Seq",
    "StagesIR",
    "Switch",
    "Try",
    "Unbatch",
]

Location = tuple[str, int] | None
CallKind = Literal["function", "layer", "object"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    """Base of every IR node. ``label`` is the transform's short repr, for messages and printing."""

    label: str = ""
    location: Location = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Call(Node):
    """A user callable applied to the value: a function, an ``nn.Module`` (``layer``) or a callable
    object. ``unpack``: a tuple/list value is spread into several parameters (``f(*value)``);
    ``arity``: how many values it takes then, when fixed (no defaults, no ``*args``). ``vmap``: a function
    moved from the preprocess into the forward, applied per item as ``torch.vmap(target)(batch)``."""

    transform: Any = field(compare=False, repr=False)
    target: Any = field(compare=False, repr=False)
    kind: CallKind = "function"
    unpack: bool = False
    arity: int | None = None
    vmap: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Attr(Node):
    """``same...``: attribute, item and call operations (:class:`GetAttr`, :class:`GetItem`,
    :class:`CallValue`) applied in order to the value."""

    operations: tuple[Operation, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity(Node):
    """Passes the value through."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Batch(Node):
    """The ``batch`` marker: the end of preprocessing (collation is done by the runtime)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Unbatch(Node):
    """The ``unbatch`` marker: the start of postprocessing."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Seq(Node):
    """``a >> b >> c``."""

    steps: tuple[Node, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Rollout(Node):
    """``a + b``: every branch gets the same value; a namedtuple with ``fields`` comes out."""

    branches: tuple[Node, ...] = ()
    fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Parallel(Node):
    """``a / b``: branch ``i`` gets element ``i`` of the value; a namedtuple with ``fields`` comes out."""

    branches: tuple[Node, ...] = ()
    fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Map(Node):
    """``~t``: ``body`` applied to every element; a tuple comes out."""

    body: Node = field(default_factory=Identity)


@dataclass(frozen=True, slots=True, kw_only=True)
class Switch(Node):
    """``IfInMode``: ``if_`` when applied in ``mode``, else ``else_``."""

    mode: str = "infer"
    if_: Node = field(default_factory=Identity)
    else_: Node = field(default_factory=Identity)


@dataclass(frozen=True, slots=True, kw_only=True)
class Try(Node):
    """``Try``: ``catch(x)`` when ``body(x)`` raises one of ``exceptions``, else ``else_(body(x))``;
    ``finally_(x)`` runs on the input in a ``finally:`` clause, for its effect."""

    body: Node = field(default_factory=Identity)
    catch: Node = field(default_factory=Identity)
    exceptions: tuple[type[BaseException], ...] = field(default=(Exception,), compare=False)
    else_: Node = field(default_factory=Identity)
    finally_: Node = field(default_factory=Identity)


@dataclass(frozen=True, slots=True)
class StagesIR:
    """A pipeline traced stage by stage (``t._pd_stages()`` decides the split)."""

    preprocess: Node
    forward: Node
    postprocess: Node
    has_batch: bool
    has_unbatch: bool
