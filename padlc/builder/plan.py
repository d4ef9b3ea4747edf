"""What a build compiles: the traced stages after mode resolution and the stage-boundary move."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from padlc.builder.move import move_from_post
from padlc.builder.move import move_to_forward as move_steps
from padlc.ir import nodes as ir
from padlc.ir import resolve_mode, trace_stages
from padlc.language.base import Transform
from padlc.lowering.graph import vmapped

__all__ = ["DEFAULT_TOLERANCE", "BuildPlan", "MovedFunctionsFailed"]

DEFAULT_TOLERANCE = 1e-4


class MovedFunctionsFailed(Exception):
    """A backend could not lower or reproduce a forward holding moved functions (vmap steps)."""


class BuildPlan:
    """The traced stages after mode resolution and the boundary move.

    ``functions``: whether trailing functions that vmap reproduces on ``examples`` may move too;
    ``moved_functions`` names those that did."""

    def __init__(
        self,
        pipeline: Transform,
        move: bool,
        examples: Sequence[Any] = (),
        tolerance: float = DEFAULT_TOLERANCE,
        functions: bool = True,
    ) -> None:
        traced = trace_stages(pipeline)
        self.has_batch = traced.has_batch
        pre = resolve_mode(traced.preprocess, "infer")
        forward = resolve_mode(traced.forward, "infer")
        post = resolve_mode(traced.postprocess, "infer")
        moved: tuple[str, ...] = ()
        vmapped_calls: list[ir.Call] = []
        if move and self.has_batch:
            pre, forward, moved = move_steps(
                pre, forward, examples, tolerance=tolerance, functions=functions
            )
            if moved and isinstance(forward, ir.Seq):
                vmapped_calls = [s for s in forward.steps if isinstance(s, ir.Call) and s.vmap]
            forward, post, moved_post = move_from_post(forward, post)
            moved += moved_post
        self.pre, self.forward, self.post, self.moved = pre, forward, post, moved
        self.moved_functions = tuple(s.label for s in vmapped_calls)
        #: how the forward's graph code names them (``vmap_<name>``)
        self.vmap_names = tuple(vmapped(s.target).__name__ for s in vmapped_calls)

    @staticmethod
    def is_empty(node: ir.Node) -> bool:
        if isinstance(node, ir.Identity | ir.Batch | ir.Unbatch):
            return True
        return isinstance(node, ir.Seq) and all(BuildPlan.is_empty(s) for s in node.steps)
