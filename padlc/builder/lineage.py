"""A built artifact's lineage (what ``padlc.load`` rebuilds the trainable pipeline from), or why it
has none.

The lineage is the saved pipeline: ``pipeline.py`` and ``weights.safetensors``. Serving does not
read it (except the weights a compiled forward shares, :mod:`padlc.lowering.weights`), so a build
can do without it:

- ``slim=True`` (``--slim``): a serving artifact, without the lineage;
- a *compiled-only* forward: with a compiled backend, the forward stage's transforms need not be
  capturable as source (a model instance padlc cannot rebuild, a third-party model): the compiled
  forward is their only form. The artifact records them (``compiled_only``), has no lineage, and
  no ``eager`` forward (it would need their source). The preprocess and postprocess run as
  Python and must be captured as always.

``padlc.load`` of such an artifact says what is missing; ``padl_runtime.load`` serves it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from padl_runtime.manifest import CompiledOnly
from padlc.builder.files import capture_code, capture_lineage
from padlc.builder.plan import BuildPlan
from padlc.capture import WEIGHTS_FILE
from padlc.capture.shared import SharedData
from padlc.errors import SaveError
from padlc.ir import iter_calls
from padlc.ir.printer import format_location
from padlc.language.base import Transform

__all__ = ["SLIM", "Lineage", "capture_or_explain", "source_unavailable"]

SLIM = (
    "a serving build (slim=True, --slim): the artifact holds what padl_runtime.load serves, "
    "not the saved pipeline padlc.load rebuilds"
)


@dataclass(frozen=True)
class Lineage:
    """What the build wrote of the lineage: its requirements and weights file ("" when none), or
    why there is none (``without``) and the forward's compiled-only transforms."""

    requirements: dict[str, str] = field(default_factory=dict)
    weights: str = ""
    without: str = ""
    compiled_only: tuple[CompiledOnly, ...] = ()


def capture_or_explain(
    pipeline: Transform, plan: BuildPlan, root: Path, shared: SharedData, slim: bool
) -> Lineage:
    """Capture the lineage into ``root``; without one when ``slim`` or when the forward's
    transforms cannot be captured (their :class:`SaveError` is raised when the pipeline has no
    forward stage to compile, or when the failure is not theirs)."""
    if slim:
        return Lineage(without=SLIM)
    before = _files(root)
    try:
        requirements = capture_lineage(pipeline, root, shared)
    except SaveError:
        for path in _files(root) - before:  # nothing half-written stays in the artifact
            path.unlink()
        for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
            if not any(folder.iterdir()):
                folder.rmdir()
        compiled_only = _compiled_only(plan) if plan.has_batch else ()
        if not compiled_only:
            raise
        names = ", ".join(f"`{c.transform}`" for c in compiled_only)
        reason = (
            f"the forward stage's {names} cannot be captured as source ({compiled_only[0].reason}); "
            "the compiled forward is the only form of "
            + ("it" if len(compiled_only) == 1 else "them")
        )
        return Lineage(without=reason, compiled_only=compiled_only)
    weights = WEIGHTS_FILE if (root / WEIGHTS_FILE).is_file() else ""
    return Lineage(requirements=requirements, weights=weights)


def source_unavailable(lineage: Lineage) -> str:
    """Why a backend running the forward as Python source cannot build it ("" when it can)."""
    if not lineage.compiled_only:
        return ""
    first = lineage.compiled_only[0]
    where = f" ({first.where})" if first.where else ""
    return (
        f"the forward stage's `{first.transform}`{where} is compiled-only: it cannot be captured "
        f"as source ({first.reason}). Build it with a compiled backend (export, onnx, "
        "torchscript, aoti), or make it capturable (see the reason) to build eager"
    )


def _compiled_only(plan: BuildPlan) -> tuple[CompiledOnly, ...]:
    """The forward's transforms that cannot be captured as plain source, each tried on its own
    (in a scratch directory: nothing is written into the artifact)."""
    found: list[CompiledOnly] = []
    for call in iter_calls(plan.forward):
        with tempfile.TemporaryDirectory(prefix="padlc-capture-") as scratch:
            try:
                capture_code([call.transform], Path(scratch), "probe", SharedData())
            except SaveError as exc:
                reason = " ".join(str(exc).split())
                found.append(
                    CompiledOnly(
                        transform=call.label,
                        where=format_location(call.location),
                        reason=reason if len(reason) <= 600 else reason[:597] + "...",
                    )
                )
    return tuple(found)


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}
