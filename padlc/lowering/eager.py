"""``eager``: the forward as generated Python calling the captured code (weights in safetensors)."""

from __future__ import annotations

from pathlib import Path

from padlc.lowering.graph import LoweredForward
from padlc.lowering.registry import Lowered, LoweringContext, register


class EagerBackend:
    name = "eager"
    needs_source = True

    def unavailable(self, device: str) -> str | None:
        return None

    def lower(self, forward: LoweredForward, root: Path, context: LoweringContext) -> Lowered:
        return Lowered(files=context.write_eager_forward(root))


register(EagerBackend())
