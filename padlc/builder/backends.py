"""One backend of a build: lowered into the draft artifact, written, verified in a fresh process;
and ``auto``'s choice among the compiled backends (:mod:`padlc.builder.choose`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

import torch

from padl_runtime.manifest import BackendEntry
from padlc.builder.choose import choose, per_item
from padlc.builder.files import STAGE_MODULE, forward_section, remove_files, write_manifest
from padlc.builder.lineage import Lineage, source_unavailable
from padlc.builder.plan import BuildPlan, MovedFunctionsFailed
from padlc.builder.verify import verify_artifact
from padlc.errors import BuildError, LoweringError
from padlc.language.base import Transform
from padlc.lowering import BACKENDS, Lowered, LoweredForward, LoweringContext
from padlc.lowering.registry import quiet_torch_output

__all__ = ["Draft", "Job", "lower_fastest", "lower_one"]


@dataclass
class Job:
    """One build: its options, the eager reference outputs, and what happened so far."""

    pipeline: Transform
    target: Path
    inputs: list[Any]
    backend: str | Sequence[str]  # as requested (recorded in the manifest)
    slots: list[tuple[str, ...]]  # per requested backend, the candidates in order
    fastest: list[bool]  # per slot: try every candidate and keep the fastest (auto)
    device: str
    max_batch: int | None
    force_overwrite: bool
    slim: bool
    tolerance: float
    verify: bool
    module: str
    say: Callable[[str], None]
    started: float
    expected: Any
    expected_batched: Any  # None: the artifact must refuse eval mode
    label: str
    attempts: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    without_lineage: str = ""


@dataclass
class Draft:
    """The artifact directory of one attempt, before its commit: what every backend shares."""

    root: Path
    plan: BuildPlan
    lineage: Lineage
    requirements: dict[str, str]
    lowered: LoweredForward | None
    graph_source: str
    base: dict[str, Any]
    context: LoweringContext
    kept: list[BackendEntry] = field(default_factory=list)


def lower_fastest(job: Job, draft: Draft, candidates: tuple[str, ...]) -> BackendEntry | None:
    """``auto``: every compiled candidate lowered, verified and timed; the fastest kept (the
    others' files removed), else ``eager``; ``None`` when nothing builds."""
    compiled = [name for name in candidates if name != "eager"]
    built: list[tuple[BackendEntry, float]] = []
    for name in compiled:
        found = lower_one(job, draft, name, alone=False, timed=True)
        if found is not None:
            built.append(found)
    if not built:
        if draft.plan.moved_functions:  # try again with the functions left in the preprocess
            raise MovedFunctionsFailed("no compiled backend took the moved functions")
        eager = [n for n in candidates if n == "eager"]
        return lower_one(job, draft, eager[0], alone=False) if eager else None
    name, why = choose([(e.name, seconds) for e, seconds in built])
    job.notes.append(why)
    for entry, _ in built:
        if entry.name != name:
            remove_files(draft.root, entry.files)
    chosen = next(e for e, _ in built if e.name == name)
    if chosen.note:  # the note of the backend kept, not of those timed against it
        job.notes.append(f"{name}: {chosen.note}")
    return chosen


@overload
def lower_one(
    job: Job, draft: Draft, name: str, alone: bool, timed: Literal[False] = False
) -> BackendEntry | None: ...


@overload
def lower_one(
    job: Job, draft: Draft, name: str, alone: bool, timed: Literal[True]
) -> tuple[BackendEntry, float] | None: ...


def lower_one(
    job: Job, draft: Draft, name: str, alone: bool, timed: bool = False
) -> BackendEntry | tuple[BackendEntry, float] | None:
    """Lower, write and verify one backend; ``None`` (with the reason recorded) if it fails and
    another candidate may follow (``alone``: it is the only one, so raise). ``timed``: with its
    infer_apply time per item (auto's candidates, where a failure on moved functions drops the
    candidate rather than rebuilding the artifact)."""
    impl = BACKENDS[name]
    reason = impl.unavailable(job.device)
    if reason is None and impl.needs_source:
        reason = source_unavailable(draft.lineage) or None
    if reason is not None:
        job.attempts.append((name, f"unavailable: {reason}"))
        if alone:
            raise BuildError(f"Backend {name!r} cannot build here: {reason}.")
        return None
    job.say(f"lowering the forward with {name} ...")
    tick = time.perf_counter()
    try:
        if draft.lowered is None:  # no batch: the forward is generated Python in stages.py
            result = Lowered(files=(STAGE_MODULE,))
        else:  # what torch prints while it tries: not in the build's output, a note on a failure
            with quiet_torch_output(name):
                result = impl.lower(draft.lowered, draft.root, draft.context)
    except Exception as exc:  # LoweringError, or torch failing inside a backend
        first = str(exc).splitlines()[0] if str(exc).strip() else ""
        if not isinstance(exc, LoweringError):
            first = f"{type(exc).__name__}: {first}"
        job.attempts.append((name, f"failed to lower: {first}"))
        if draft.plan.moved_functions and not timed:
            raise MovedFunctionsFailed(f"{name}: {job.attempts[-1][1]}") from exc
        if alone and isinstance(exc, LoweringError):
            raise
        if alone:
            raise BuildError(
                f"Backend {name!r} failed while compiling the forward: {first.rstrip('.')}. Try "
                "another backend (--backend eager runs the forward as Python when padlc can capture its source)."
            ) from exc
        return None
    seconds = time.perf_counter() - tick
    entry = BackendEntry(
        name=name,
        files=result.files,
        device=job.device,
        arch=result.arch,
        torch_version=torch.__version__,
        tolerance=job.tolerance,
        build_seconds=round(seconds, 3),
        note=result.note,
        weights=result.weights,
    )
    kept = (*draft.kept, entry)
    section = forward_section(
        draft.plan, draft.lowered, kept, draft.graph_source, job.device, job.max_batch
    )
    write_manifest(draft.root, {**draft.base, "forward": section})
    if not job.verify:  # the caller checks the artifact itself (the test matrix batches checks)
        job.attempts.append(
            (name, f"built, not verified (verify=False), lowered in {seconds:.1f} s")
        )
        if result.note and not timed:
            job.notes.append(f"{name}: {result.note}")
        return (entry, 0.0) if timed else entry
    verified = _verified(job, draft, entry, result, alone, timed)
    if verified is None or not timed:
        return verified[0] if verified is not None else None
    return verified


def _verified(
    job: Job, draft: Draft, entry: BackendEntry, result: Lowered, alone: bool, timed: bool
) -> tuple[BackendEntry, float] | None:
    """``entry`` with its measured error (and infer_apply time per item when ``timed``) if the
    artifact reproduces the eager outputs in a fresh process; else ``None`` with its files removed
    (or an error when it was the only candidate)."""
    name, seconds = entry.name, entry.build_seconds
    job.say(f"verifying the {name} artifact in a fresh process ...")
    check = verify_artifact(
        draft.root,
        name,
        job.inputs,
        job.expected,
        job.expected_batched,
        job.tolerance,
        timing=0.5 if timed else 0.0,
    )
    if check.ok:
        speed = f", infer_apply {per_item(check.infer_seconds)}" if check.infer_seconds else ""
        job.attempts.append(
            (
                name,
                f"verified (max abs error {check.max_abs_error:.3g}, lowered in {seconds:.1f} s"
                f"{speed})",
            )
        )
        if result.note and not timed:
            job.notes.append(f"{name}: {result.note}")
        verified = BackendEntry(**{**_fields(entry), "max_abs_error": check.max_abs_error})
        return verified, check.infer_seconds or 0.0
    job.attempts.append((name, f"verification failed: {check.message.splitlines()[0]}"))
    if draft.plan.moved_functions and not timed:
        raise MovedFunctionsFailed(f"{name}: {job.attempts[-1][1]}")
    if alone:
        raise BuildError(
            f"The {name} artifact does not reproduce the eager pipeline: {check.message}\n"
            "Try another backend (--backend eager runs the forward as Python) and report the pipeline."
        )
    if result.files != (STAGE_MODULE,):
        remove_files(draft.root, result.files)
    return None


def _fields(entry: BackendEntry) -> dict[str, Any]:
    return {f: getattr(entry, f) for f in entry.__dataclass_fields__}
