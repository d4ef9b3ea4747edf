"""``export``: ``torch.export`` with the batch axis dynamic, saved as ``forward/forward.pt2``."""

from __future__ import annotations

from pathlib import Path

import torch

from padlc.lowering.graph import LoweredForward, blame, lowering_error
from padlc.lowering.registry import Lowered, LoweringContext, dynamic_batch, register

FILE = "forward/forward.pt2"


def export_program(forward: LoweredForward, backend: str) -> torch.export.ExportedProgram:
    try:
        with torch.no_grad():
            return torch.export.export(
                forward.module,
                forward.example,
                dynamic_shapes=dynamic_batch(forward),
                strict=False,
            )
    except Exception as exc:
        culprit = blame(exc, forward.calls)
        raise lowering_error(
            forward.label, culprit, exc, "cannot be traced by torch.export", backend
        ) from exc


class ExportBackend:
    name = "export"

    def unavailable(self, device: str) -> str | None:
        return None

    def lower(self, forward: LoweredForward, root: Path, context: LoweringContext) -> Lowered:
        program = export_program(forward, self.name)
        (root / FILE).parent.mkdir(parents=True, exist_ok=True)
        torch.export.save(program, str(root / FILE))
        return Lowered(files=(FILE,))


register(ExportBackend())
