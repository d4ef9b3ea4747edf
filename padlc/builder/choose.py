"""How ``--backend auto`` picks the forward to keep among the compiled backends that verified.

Every compiled backend of :data:`padlc.lowering.AUTO_ORDER` is lowered and verified, and the
verifying process times the artifact's ``infer_apply`` on the examples (best of several rounds).
The fastest is kept; a backend later in the order (export, onnx, torchscript) must be faster by
more than :data:`MARGIN` to be taken over an earlier one, so that timing noise does not flip the
choice between two forwards of the same speed. The build report says which was chosen and why.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["MARGIN", "choose", "per_item"]

#: a later backend in the order is chosen only when it takes less than (1 - MARGIN) of the time
MARGIN = 0.1


def per_item(seconds: float) -> str:
    """``45 µs`` / ``3.2 ms``: a time per item, for the report."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def choose(timed: Sequence[tuple[str, float]]) -> tuple[str, str]:
    """The backend to keep among ``timed`` (name, seconds per item, in order of preference), and
    the sentence saying why."""
    if not timed:
        raise ValueError("no verified backend to choose from")
    chosen, best = timed[0]
    for name, seconds in timed[1:]:
        if seconds < best * (1 - MARGIN):
            chosen, best = name, seconds
    if len(timed) == 1:
        return chosen, f"auto kept {chosen}: the only compiled forward that verified"
    others = ", ".join(f"{name} {per_item(seconds)}" for name, seconds in timed if name != chosen)
    return chosen, (
        f"auto chose {chosen}: the fastest verified forward here (infer_apply {per_item(best)} per "
        f"item; {others}; a later backend of {', '.join(n for n, _ in timed)} must be "
        f"{MARGIN:.0%} faster to be preferred)"
    )
