"""``pipeline.ts``: the whole pipeline scripted for the C++ runtime's ``run()``, when possible.

Possible when everything outside the forward is batch-safe tensor code: the preprocess is empty
after the boundary move, and the postprocess is only ``same`` operations padlc can apply batched.
The scripted module takes the raw batch's tensors and returns a tuple of tensors.
"""

from __future__ import annotations

from pathlib import Path

from padlc.builder.move import split_trailing
from padlc.ir import nodes as ir
from padlc.lowering.graph import LoweredForward, build_graph
from padlc.lowering.torchscript import quietly

__all__ = ["script_pipeline"]

FILE = "pipeline.ts"


def _marker(node: ir.Node) -> bool:
    """Whether ``node`` only marks the stages: ``batch``, ``unbatch``, ``identity``, or a parallel
    of those (``batch / batch``: each raw input batched as it is)."""
    if isinstance(node, ir.Identity | ir.Batch | ir.Unbatch):
        return True
    if isinstance(node, ir.Parallel):
        return all(_marker(branch) for branch in node.branches)
    if isinstance(node, ir.Seq):
        return all(_marker(step) for step in node.steps)
    return False


def _steps(node: ir.Node) -> tuple[ir.Node, ...]:
    if isinstance(node, ir.Seq):
        return tuple(s for s in node.steps if not _marker(s))
    return () if _marker(node) else (node,)


def script_pipeline(
    pre: ir.Node, forward: ir.Node, post: ir.Node, lowered: LoweredForward, root: Path
) -> tuple[str | None, str]:
    """Write ``pipeline.ts`` and return its name, or ``None`` and why not."""
    pre_steps = _steps(pre)
    if pre_steps:
        return None, (
            f"the preprocess `{pre_steps[0].label}` is Python code run per item, which "
            "TorchScript cannot take over; C++ callers run the forward on collated tensors"
        )
    post_steps = _steps(post)
    kept, moved = split_trailing(post_steps)
    if kept:
        return None, (
            f"the postprocess `{kept[-1].label}` is Python code run per item, which TorchScript "
            "cannot take over; C++ callers run the forward and postprocess themselves"
        )
    whole = ir.Seq(steps=(forward, *moved), label=forward.label, location=forward.location)
    try:
        from padl_runtime.treespec import unflattener

        batch = unflattener(lowered.input_spec)([t.cpu() for t in lowered.example])
        graph = build_graph(whole, batch, label=lowered.label, device="cpu")
        scripted, _ = quietly(__import__("torch").jit.script, graph.module)
        quietly(scripted.save, str(root / FILE))
    except Exception as exc:  # an optional extra: torch.jit.script fails in many ways (OSError:
        # a third-party class without source), and C++ still has the forward
        return (
            None,
            f"scripting the whole pipeline failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
        )
    return FILE, ""
