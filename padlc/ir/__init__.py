"""padlc's intermediate representation: frozen nodes traced from language objects, stage by stage.

>>> from padlc import transform, batch, unbatch, same
>>> from padlc.ir import trace_stages, format_ir
>>> stages = trace_stages(transform(lambda x: x) >> batch >> same.float() >> unbatch)
>>> print(format_ir(stages.forward).split("   (")[0])
Attr `same.float()`
"""

from padlc.ir.nodes import (
    Attr,
    Batch,
    Call,
    CallValue,
    GetAttr,
    GetItem,
    Identity,
    Map,
    Node,
    Operation,
    Parallel,
    Rollout,
    Seq,
    StagesIR,
    Switch,
    Try,
    Unbatch,
)
from padlc.ir.printer import format_ir, format_location
from padlc.ir.trace import iter_calls, plain_callable, resolve_mode, trace, trace_stages

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
    "format_ir",
    "format_location",
    "iter_calls",
    "plain_callable",
    "resolve_mode",
    "trace",
    "trace_stages",
]
