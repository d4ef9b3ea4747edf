"""``torchscript``: ``torch.jit.script`` of the graph, else ``torch.jit.trace`` (reason recorded).

The file ``forward/forward.ts`` takes N tensors and returns a tuple of tensors: the C++ runtime
(runtime/cpp) relies on exactly that. torch 2.13 deprecates TorchScript; the build reports the
deprecation once in its output (``Lowered.note``) instead of letting the warning escape.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from padlc.lowering.graph import LoweredForward, blame, lowering_error
from padlc.lowering.registry import Lowered, LoweringContext, register

FILE = "forward/forward.ts"


def quietly(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, list[str]]:
    """Call ``fn`` collecting its deprecation warnings instead of emitting them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args, **kwargs)
    notes = []
    for w in caught:
        if issubclass(w.category, DeprecationWarning | FutureWarning) and "jit" in str(w.message):
            notes.append(str(w.message).splitlines()[0])
    return result, sorted(set(notes))


def script_or_trace(
    module: torch.nn.Module, example: tuple[Any, ...], *, trace: bool = True
) -> tuple[Any, str, list[str]]:
    """A TorchScript module: scripted when possible, else traced (unless ``trace=False``); the
    reason and warnings."""
    try:
        scripted, notes = quietly(torch.jit.script, module)
        return scripted, "", notes
    except Exception as exc:
        if not trace:
            raise
        reason = f"torch.jit.script failed ({type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}); traced instead"
    with torch.no_grad():
        traced, notes = quietly(torch.jit.trace, module, example, check_trace=False, strict=False)
    return traced, reason, notes


class TorchScriptBackend:
    name = "torchscript"
    needs_source = False

    def unavailable(self, device: str) -> str | None:
        return None

    def lower(self, forward: LoweredForward, root: Path, context: LoweringContext) -> Lowered:
        # A trace of torch.vmap (a function moved by the stage-boundary move) records the batched
        # operations of one example batch; rather than trust it, fail so the build moves less.
        moved = any(call.vmap for call in forward.calls)
        try:
            module, reason, notes = script_or_trace(
                forward.module, forward.example, trace=not moved
            )
        except Exception as exc:
            raise lowering_error(
                forward.label,
                blame(exc, forward.calls),
                exc,
                "cannot be scripted (a moved function's torch.vmap is not traced)"
                if moved
                else "can be neither scripted nor traced",
                self.name,
            ) from exc
        (root / FILE).parent.mkdir(parents=True, exist_ok=True)
        _, save_notes = quietly(module.save, str(root / FILE))
        note = "; ".join(
            [reason, *sorted(set(notes + save_notes))]
            if reason
            else sorted(set(notes + save_notes))
        )
        return Lowered(files=(FILE,), note=note)


register(TorchScriptBackend())
