"""``export``: ``torch.export`` with the batch axis dynamic, saved as ``forward/forward.pt2``."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from padlc.lowering.fastpath import fused_calls, fused_fastpaths
from padlc.lowering.graph import LoweredForward, blame, lowering_error
from padlc.lowering.registry import Lowered, LoweringContext, dynamic_batch, register

FILE = "forward/forward.pt2"


def export_program(forward: LoweredForward, backend: str) -> torch.export.ExportedProgram:
    try:
        with torch.no_grad(), fused_fastpaths(forward.module):
            program = torch.export.export(
                forward.module,
                forward.example,
                dynamic_shapes=dynamic_batch(forward),
                strict=False,
            )
            return _without_vmap(program)
    except Exception as exc:
        culprit = blame(exc, forward.calls)
        raise lowering_error(
            forward.label, culprit, exc, "cannot be traced by torch.export", backend
        ) from exc


def _without_vmap(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """A moved function's ``torch.vmap`` leaves functorch calls in the exported graph
    (``_add_batch_dim``, ``lazy_load_decompositions``, ...), which some torch releases cannot
    serialise and every run would interpret. Decomposing to the ATen inference graph (no
    decompositions beyond that) replaces them with the plain batched operations."""
    if not any(
        node.op == "call_function"
        and getattr(node.target, "__module__", "").startswith("torch._functorch")
        for node in program.graph.nodes
    ):
        return program
    with warnings.catch_warnings():  # torch-internal deprecation notices (pytree, torch.jit)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return program.run_decompositions({})


def fused_note(program: torch.export.ExportedProgram) -> str:
    """The build note saying which layers run on PyTorch's fused inference kernels (see
    :mod:`padlc.lowering.fastpath`), or ``""``."""
    counts = fused_calls(program)
    if not counts:
        return ""
    layers = ", ".join(f"{count} {kind}" for kind, count in counts.items())
    return f"fused inference kernels kept, as in eager: {layers}"


class ExportBackend:
    name = "export"

    def unavailable(self, device: str) -> str | None:
        return None

    def lower(self, forward: LoweredForward, root: Path, context: LoweringContext) -> Lowered:
        program = export_program(forward, self.name)
        (root / FILE).parent.mkdir(parents=True, exist_ok=True)
        torch.export.save(program, str(root / FILE))
        return Lowered(files=(FILE,), note=fused_note(program))


register(ExportBackend())
