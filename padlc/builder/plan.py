"""What a build compiles: the traced stages after mode resolution and the stage-boundary move.

A pipeline with mode switches (``IfInfer``, ``IfEval``, ``IfTrain``, ``IfInMode``) runs different
steps in ``infer_apply`` and ``eval_apply``. The artifact reproduces both: each mode's preprocess
and postprocess are generated as their own functions of the stage module (``preprocess`` /
``postprocess`` for infer, ``eval_preprocess`` / ``eval_postprocess`` when eval differs). The
forward is compiled once, for infer mode; when a switch inside it takes another branch in eval
mode, the artifact refuses ``eval_apply`` with the reason (``eval_unavailable``) rather than
answering with infer's branch. (A pipeline without ``batch`` has no compiled forward: its per-item
forward is generated Python, ``eval_forward`` for eval mode when it differs.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from padlc.builder.move import move_from_post
from padlc.builder.move import move_to_forward as move_steps
from padlc.ir import nodes as ir
from padlc.ir import resolve_mode, trace_stages
from padlc.ir.printer import format_location
from padlc.ir.trace import children, iter_calls
from padlc.language.base import Transform
from padlc.lowering.graph import vmapped

__all__ = ["DEFAULT_TOLERANCE", "BuildPlan", "MovedFunctionsFailed", "same_tree"]

DEFAULT_TOLERANCE = 1e-4


class MovedFunctionsFailed(Exception):
    """A backend could not lower or reproduce a forward holding moved functions (vmap steps)."""


class _Stages(NamedTuple):
    pre: ir.Node
    forward: ir.Node
    post: ir.Node


def same_tree(a: ir.Node, b: ir.Node) -> bool:
    """Whether two IR trees run the same steps: equal nodes calling the same transforms."""
    if a is b:
        return True
    if a != b:
        return False
    return [id(c.transform) for c in iter_calls(a)] == [id(c.transform) for c in iter_calls(b)]


def _switches(node: ir.Node) -> list[ir.Switch]:
    found = [node] if isinstance(node, ir.Switch) else []
    for child in children(node):
        found += _switches(child)
    return found


class BuildPlan:
    """The traced stages after mode resolution and the boundary move.

    ``pre``/``forward``/``post`` are infer mode's; ``eval_pre``/``eval_post`` eval mode's (the
    same objects when eval runs the same steps); ``eval_unavailable`` says why the artifact cannot
    apply eval mode ("" when it can). ``functions``: whether trailing functions that vmap
    reproduces on ``examples`` may move too; ``moved_functions`` names those that did. ``notes``
    are for the build report."""

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
        self.notes: list[str] = []
        stages = (traced.preprocess, traced.forward, traced.postprocess)
        infer = _Stages(*(resolve_mode(s, "infer") for s in stages))
        evals = _Stages(*(resolve_mode(s, "eval") for s in stages))
        self.eval_unavailable = ""
        #: eval mode's forward when it differs in a pipeline without `batch` (generated Python,
        #: run per item: each mode gets its own); else None
        self.eval_forward: ir.Node | None = None
        if not same_tree(infer.forward, evals.forward):
            if self.has_batch:
                self.eval_unavailable = _forward_switch_reason(traced.forward)
                evals = infer  # not generated: eval_apply is refused
            else:
                self.eval_forward = evals.forward
        mode_dependent = not (same_tree(infer.pre, evals.pre) and same_tree(infer.post, evals.post))
        pre, forward, post, moved, vmapped_calls = self._moved(
            infer, move, examples, tolerance, functions
        )
        eval_pre, eval_post = pre, post
        if mode_dependent:
            eval_pre, eval_forward, eval_post, eval_moved, _ = self._moved(
                evals, move, examples, tolerance, functions
            )
            if self.has_batch and (eval_moved != moved or not same_tree(eval_forward, forward)):
                # Each mode would move other steps into the one forward: move none.
                self.notes.append(
                    "the stage-boundary move is off: infer and eval mode (IfInMode switches) "
                    "would move different steps into the one compiled forward"
                )
                pre, forward, post = infer
                eval_pre, _, eval_post = evals
                moved, vmapped_calls = (), []
        self.pre, self.forward, self.post, self.moved = pre, forward, post, moved
        self.eval_pre = pre if same_tree(eval_pre, pre) else eval_pre
        self.eval_post = post if same_tree(eval_post, post) else eval_post
        self.moved_functions = tuple(s.label for s in vmapped_calls)
        #: how the forward's graph code names them (``vmap_<name>``)
        self.vmap_names = tuple(vmapped(s.target).__name__ for s in vmapped_calls)

    def _moved(
        self,
        stages: _Stages,
        move: bool,
        examples: Sequence[Any],
        tolerance: float,
        functions: bool,
    ) -> tuple[ir.Node, ir.Node, ir.Node, tuple[str, ...], list[ir.Call]]:
        pre, forward, post = stages
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
        return pre, forward, post, moved, vmapped_calls

    @property
    def eval_differs(self) -> bool:
        """Eval mode runs other preprocess or postprocess steps than infer mode (or, without
        `batch`, another per-item forward)."""
        return (
            self.eval_pre is not self.pre
            or self.eval_post is not self.post
            or self.eval_forward is not None
        )

    @staticmethod
    def is_empty(node: ir.Node) -> bool:
        if isinstance(node, ir.Identity | ir.Batch | ir.Unbatch):
            return True
        return isinstance(node, ir.Seq) and all(BuildPlan.is_empty(s) for s in node.steps)


def _forward_switch_reason(forward: ir.Node) -> str:
    """Why eval_apply is refused: the switches of the forward stage that eval mode resolves
    differently, with their lines, and what to do."""
    differing = [
        s
        for s in _switches(forward)
        if not same_tree(resolve_mode(s, "infer"), resolve_mode(s, "eval"))
    ]
    named = ", ".join(
        f"`{s.label}`" + (f" ({format_location(s.location)})" if s.location else "")
        for s in differing
    )
    return (
        f"the forward stage holds {named}, which takes another branch in eval mode than in infer "
        "mode; the compiled forward runs infer mode's. Use infer_apply, or move the switch before "
        "`batch` or after `unbatch` (the preprocess and postprocess are built for both modes) "
        "and build again"
    )
