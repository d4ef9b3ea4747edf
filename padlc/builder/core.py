"""``padlc.build``: compile a pipeline into a verified ``.padl`` artifact.

1. Run the eager pipeline on the example inputs (the reference outputs).
2. Trace it into the IR, stage by stage; resolve mode switches for inference; move trailing
   batch-safe preprocessing steps into the forward (:mod:`padlc.builder.move`).
3. Capture the lineage (``pipeline.py``, the weights; none for ``slim`` builds and compiled-only
   forwards, :mod:`padlc.builder.lineage`) and generate ``stages.py`` (each mode's
   preprocess/postprocess) from the captured user code; data they share is stored once, and the
   compiled forwards read the lineage's weights instead of holding a copy where they can.
4. Build the forward's fx graph on a batch of at least two examples; write ``forward/graph.py``.
5. Lower it with each backend of the strategy and verify the artifact in a fresh process without
   padlc, in infer and eval mode (``auto``: every compiled backend that verifies is timed and the
   fastest kept, :mod:`padlc.builder.choose`; eager only when none does).
   If a backend fails on a forward holding moved functions (``torch.vmap``), build the artifact
   again moving only ``same`` steps (the attempts and notes say why).
6. Commit the directory atomically with its manifest.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import padl_runtime
from padl_runtime.keywords import suggest_keywords
from padl_runtime.manifest import MANIFEST_FILE, BackendEntry
from padlc.artifact import ArtifactWriter, artifact_path
from padlc.artifact.saving import requirements_text, stage_layout
from padlc.builder.arguments import build_device, check_pipeline, example_list, on_device
from padlc.builder.backends import Draft, Job, lower_fastest, lower_one
from padlc.builder.examples import batched_outputs, example_batch, example_outputs
from padlc.builder.files import (
    GRAPH_FILE,
    STAGE_MODULE,
    cpp_section,
    eager_forward_writer,
    forward_section,
    header,
    write_stage_module,
)
from padlc.builder.lineage import capture_or_explain
from padlc.builder.plan import DEFAULT_TOLERANCE, BuildPlan, MovedFunctionsFailed
from padlc.capture import MODULE_FILE
from padlc.capture.shared import SharedData
from padlc.errors import BuildError, LoweringError
from padlc.language.base import Transform
from padlc.lowering import (
    BackendName,
    LoweredForward,
    LoweringContext,
    build_graph,
    requested_backends,
    strategy,
)
from padlc.lowering.weights import WeightIndex

__all__ = ["BuildResult", "build"]


@dataclass(frozen=True)
class BuildResult:
    """What ``build`` did: the artifact, the backends kept (``backend`` is the preferred one), and
    every attempt with its outcome."""

    path: Path
    backend: str
    backends: tuple[str, ...]
    attempts: tuple[tuple[str, str], ...]
    moved_to_forward: tuple[str, ...]
    max_abs_error: float | None
    seconds: float
    notes: tuple[str, ...] = field(default=())
    #: why the artifact has no lineage (``padlc.load`` cannot rebuild it): slim, compiled-only
    without_lineage: str = ""

    def report(self) -> str:
        kept = ", ".join(repr(b) for b in self.backends)
        plural = "s" if len(self.backends) > 1 else ""
        lines = [f"built {self.path} with backend{plural} {kept} in {self.seconds:.1f} s"]
        for name, outcome in self.attempts:
            lines.append(f"  {name}: {outcome}")
        if self.moved_to_forward:
            lines.append(f"  moved into the forward: {', '.join(self.moved_to_forward)}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


@suggest_keywords
def build(
    pipeline: Transform,
    path: str | os.PathLike[str],
    *,
    inputs: Iterable[Any],
    backend: BackendName | Sequence[BackendName] = "auto",
    device: str | torch.device = "cpu",
    max_batch: int | None = None,
    force_overwrite: bool = False,
    move_to_forward: bool = True,
    slim: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
    verify: bool = True,
    module: str = "",
    log: Callable[[str], None] | None = None,
) -> BuildResult:
    """Compile ``pipeline`` into the artifact directory ``path`` (``.padl`` is added when it has
    another suffix or none), verified on ``inputs``; what it did is the :class:`BuildResult`.

    - ``inputs``: raw examples (what ``infer_apply`` takes; at least two when the pipeline has a
      ``batch``, so the batch axis is traced as dynamic).
    - ``backend``: ``"auto"`` (the fastest compiled forward that verifies), ``"export"``,
      ``"aoti"``, ``"torchscript"``, ``"onnx"``, ``"eager"``, or a list of them: the artifact
      then holds one verified forward per entry, and the runtime prefers them in that order. C++
      loads ``"torchscript"`` and ``"aoti"`` forwards (docs/cpp.md).
    - ``device``: where the forward is traced and verified (the pipeline is moved there for the
      build and back after it).
    - ``max_batch``: the largest batch the forward accepts, at least 2 (it is traced on at most
      that many examples and verified in batches of at most that size); ``None``: no bound.
    - ``force_overwrite``: replace an existing artifact at ``path``.
    - ``move_to_forward``: move trailing batch-safe preprocessing steps into the compiled forward
      (the stage-boundary optimisation, docs/building.md).
    - ``slim``: a serving artifact without the lineage (``padlc.load`` cannot rebuild it,
      ``padl_runtime.load`` serves it).
    - ``tolerance``: the relative error allowed between the artifact's float outputs and the
      eager pipeline's; ``verify=False`` skips that check (the artifact is not run).
    - ``module``: where the pipeline came from, recorded in the manifest; ``log``: called with
      each progress message.

    With a compiled backend the forward stage's transforms need not be capturable as source (a
    model instance padlc cannot rebuild): the compiled forward is their only form, and the
    artifact records them as compiled-only, without a lineage or an ``eager`` forward.

    Raises :class:`~padlc.BuildError` (not a pipeline, bad inputs, an unknown backend or device,
    an existing or unwritable target, failed verification) or :class:`~padlc.LoweringError` (a
    forward the chosen backend cannot compile, naming the transform and its line; torch's own
    exception and output are its ``torch_error`` and ``torch_output``).

    >>> import padlc                                                             # doctest: +SKIP
    >>> padlc.build(pipeline, "model.padl", inputs=examples, backend="export")  # doctest: +SKIP
    """
    from padlc.language.apply import layer_modes

    check_pipeline(pipeline)
    # Layers are traced in eval mode (as infer_apply runs them) and on the build's device, and
    # restored afterwards.
    device_name = build_device(device)
    try:
        with layer_modes(pipeline.pd_layers, training=False), on_device(pipeline, device_name):
            return _build(
                pipeline,
                path,
                inputs=inputs,
                backend=backend,
                device=device_name,
                max_batch=max_batch,
                force_overwrite=force_overwrite,
                move_to_forward=move_to_forward,
                slim=slim,
                tolerance=tolerance,
                verify=verify,
                module=module,
                log=log,
            )
    except LoweringError as error:
        # The message names the transform, its line and the fix; torch's traceback (hundreds
        # of lines of its tracer) and what it printed stay on the error, out of the report.
        raise error.detached() from None


def _build(
    pipeline: Transform,
    path: str | os.PathLike[str],
    *,
    inputs: Iterable[Any],
    backend: BackendName | Sequence[BackendName] = "auto",
    device: str = "cpu",
    max_batch: int | None = None,
    force_overwrite: bool = False,
    move_to_forward: bool = True,
    slim: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
    verify: bool = True,
    module: str = "",
    log: Callable[[str], None] | None = None,
) -> BuildResult:
    """:func:`build` with the layers already in eval mode."""
    started = time.perf_counter()
    given = artifact_path(path)
    target = given.absolute().parent.resolve() / given.name  # no `..` in the paths reported
    if target.exists() and not force_overwrite:
        raise BuildError(
            f"{target} already exists. Pass force_overwrite=True (--force) to replace it, or choose another path."
        )
    requested = requested_backends(backend)
    slots = [strategy(name) for name in requested]
    fastest = [name == "auto" for name in requested]  # auto: every candidate, the fastest kept
    if max_batch is not None and (
        isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 2
    ):
        raise BuildError(
            f"max_batch must be an integer of at least 2, got {max_batch!r}: the forward is "
            "traced on a batch of two or more items so that its batch axis stays dynamic. Pass "
            "max_batch=2 or more (--max-batch N), or leave it unset for no bound."
        )
    examples = example_list(inputs)
    if not examples:
        raise BuildError("No example inputs: pass a list of raw items, e.g. inputs=[item1, item2].")
    plan = BuildPlan(pipeline, move_to_forward, examples, tolerance)
    notes: list[str] = []
    if not plan.has_batch:
        notes.append(
            "the pipeline has no `batch` marker, so there is no forward stage to compile: it is "
            "built eager (everything before `unbatch` runs per item in stages.py). Add "
            "`batch`/`unbatch` around the model to compile it."
        )
        slots, fastest = [("eager",)], [False]
    elif len(examples) < 2:
        raise BuildError(
            f"Got {len(examples)} example input; the build needs at least 2, so the batch axis is "
            "traced with a batch of several items and stays dynamic (a batch of 1 would be "
            "specialised). Pass two or more raw items, e.g. inputs=[item1, item2]."
        )
    expected = example_outputs(pipeline, examples)
    # eval_apply is verified against the eager one, unless the artifact refuses eval mode
    expected_batched = (
        None if plan.eval_unavailable else batched_outputs(pipeline, examples, max_batch)
    )
    if plan.eval_unavailable:
        notes.append(f"eval_apply is refused by the artifact: {plan.eval_unavailable}")
    notes += plan.notes
    say = log or (lambda message: None)
    added = "" if given == Path(path) else " (the .padl suffix added to the path given)"
    say(f"writing {target}{added}")
    job = Job(
        pipeline=pipeline,
        target=target,
        inputs=examples,
        backend=backend,
        slots=slots,
        fastest=fastest,
        device=device,
        max_batch=max_batch,
        force_overwrite=force_overwrite,
        slim=slim,
        tolerance=tolerance,
        verify=verify,
        module=module,
        say=say,
        started=started,
        expected=expected,
        expected_batched=expected_batched,
        label=pipeline._pd_stages().forward._pd_short_repr(),
        notes=notes,
    )
    # With moved functions (vmap steps) the artifact is tried first; if a backend cannot lower or
    # reproduce them, the whole artifact (stages.py is shared) is built again moving only `same`.
    try:
        kept = _attempt(job, plan)
    except MovedFunctionsFailed as exc:
        notes.append(
            f"moving {', '.join(f'`{n}`' for n in plan.moved_functions)} into the forward "
            f"(torch.vmap) failed ({exc}); built again without moving functions, for every "
            "backend (they share stages.py): build a backend that cannot take them on its own "
            "to keep the move for the others"
        )
        job.attempts[:] = [
            (name, f"{outcome} (with the functions moved; discarded)")
            for name, outcome in job.attempts
        ]
        plan = BuildPlan(pipeline, move_to_forward, examples, tolerance, functions=False)
        kept = _attempt(job, plan)
    return BuildResult(
        path=target,
        backend=kept[0].name,
        backends=tuple(e.name for e in kept),
        attempts=tuple(job.attempts),
        moved_to_forward=plan.moved,
        max_abs_error=kept[0].max_abs_error,
        seconds=time.perf_counter() - started,
        notes=tuple(notes),
        without_lineage=job.without_lineage,
    )


def _attempt(job: Job, plan: BuildPlan) -> list[BackendEntry]:
    """Write, lower and verify the artifact for ``plan``, commit it; the backends kept."""
    try:
        writer = ArtifactWriter(job.target, force_overwrite=job.force_overwrite)
    except OSError as exc:
        if exc.strerror is None:  # the writer's own message, naming the path
            fix = " Choose another path (-o)." if isinstance(exc, NotADirectoryError) else ""
            raise BuildError(f"{exc}{fix}") from exc
        raise BuildError(
            f"Cannot write the artifact {job.target}: {exc.strerror}. Choose a directory you "
            "can write to (-o)."
        ) from exc
    with writer:
        draft = _draft(job, plan, writer.root)
        # Each requested backend is one slot ("auto" tries several candidates); the artifact
        # keeps one verified candidate of every slot, in the order requested.
        for candidates, fastest in zip(job.slots, job.fastest):
            if any(entry.name in candidates for entry in draft.kept):
                continue
            entry = (
                lower_fastest(job, draft, candidates)
                if fastest
                else next(
                    (
                        e
                        for name in candidates
                        if (e := lower_one(job, draft, name, alone=len(candidates) == 1))
                    ),
                    None,
                )
            )
            if entry is None:
                tried = "; ".join(f"{n}: {o}" for n, o in job.attempts)
                raise BuildError(f"No backend could build a verified artifact ({tried}).")
            draft.kept.append(entry)
        _commit(job, draft, writer)
    return draft.kept


def _draft(job: Job, plan: BuildPlan, root: Path) -> Draft:
    """The files every backend shares: the lineage, the stage module, the forward's graph."""
    shared = SharedData()  # identical data files of the generated modules, stored once
    lineage = capture_or_explain(job.pipeline, plan, root, shared, job.slim)
    job.without_lineage = lineage.without
    note = (
        f"no lineage and no eager forward: {lineage.without} (padlc.load cannot rebuild this "
        "artifact; padl_runtime.load serves it)"
    )
    if lineage.compiled_only and note not in job.notes:  # once, if the artifact is built again
        job.notes.append(note)
    requirements = {
        **write_stage_module(plan, job.pipeline, root, shared),
        **lineage.requirements,
    }
    lowered: LoweredForward | None = None
    graph_source = ""
    if plan.has_batch:
        # traced on at most max_batch examples: the exported batch axis is bounded by it
        batch = example_batch(root, job.inputs[: job.max_batch], STAGE_MODULE)
        try:
            lowered = build_graph(
                plan.forward, batch, label=job.label, device=job.device, max_batch=job.max_batch
            )
        except LoweringError as exc:
            if plan.moved_functions:  # try again with the functions left in the preprocess
                raise MovedFunctionsFailed(str(exc).splitlines()[0]) from exc
            raise
        graph_source = GRAPH_FILE
        _write_graph(job, plan, root, lowered)
    base: dict[str, Any] = {
        "padlc_version": _version(),
        "kind": "built",
        "pipeline": repr(job.pipeline)[:500],
        # the lineage: padlc.load reads a built artifact too, unless it has none
        "module": "" if lineage.without else MODULE_FILE,
        "stages": stage_layout(job.pipeline),
        "python_version": platform.python_version(),
        "torch_version": torch.__version__,
        "without_lineage": lineage.without,
        "compiled_only": lineage.compiled_only,
    }
    index: list[WeightIndex | None] = []  # built on first use: hashing the weights takes time

    def shared_weights() -> WeightIndex | None:
        if not index:
            index.append(WeightIndex(root, lineage.weights) if lineage.weights else None)
        return index[0]

    context = LoweringContext(
        write_eager_forward=eager_forward_writer(plan, job.pipeline, shared),
        shared_weights=shared_weights,
    )
    return Draft(root, plan, lineage, requirements, lowered, graph_source, base, context)


def _write_graph(job: Job, plan: BuildPlan, root: Path, lowered: LoweredForward) -> None:
    """``forward/graph.py``: the forward's fx graph, for reading."""
    (root / "forward").mkdir(exist_ok=True)
    (root / GRAPH_FILE).write_text(
        "# "
        + "\n# ".join(header(job.pipeline, "the forward stage as a torch.fx graph (for reading)"))
        + "\n# Inputs: the collated batch, flattened; outputs: a flat tuple of tensors.\n"
        + "".join(
            f"# vmap_{name}(batch) is torch.vmap({name})(batch): the preprocess step "
            f"`{name}` applied per item over the batch (stage-boundary move).\n"
            for name in plan.vmap_names
        )
        + "\n".join(line.rstrip() for line in lowered.code.strip("\n").splitlines())
        + "\n",
        encoding="utf-8",
    )


def built_requirements(requirements: Mapping[str, str]) -> str:
    """A built artifact's ``requirements.txt``: what a serving machine installs. It runs on
    ``padl-runtime`` alone; ``padlc`` (which the lineage, ``pipeline.py``, imports) is named in a
    comment, as what ``padlc.load`` of the artifact needs besides."""
    pins = dict(requirements)
    compiler = pins.pop("padlc", None)
    pins["padl-runtime"] = padl_runtime.__version__
    notes = (
        [f"padlc.load (the lineage, {MODULE_FILE}) also needs padlc=={compiler}"]
        if compiler
        else []
    )
    return requirements_text(pins, notes)


def _commit(job: Job, draft: Draft, writer: ArtifactWriter) -> None:
    """Write the requirements and the final manifest, then move the directory into place."""
    root, kept = draft.root, tuple(draft.kept)
    chosen = next((e for e in kept if e.name in ("torchscript", "aoti")), kept[0])
    scriptable = any(e.name == "torchscript" for e in kept)
    cpp = cpp_section(draft.plan, draft.lowered, chosen, root, job.notes, scriptable)
    # The compiled forward needs torch even when the captured code does not import it; onnx
    # needs onnxruntime, and a forward sharing the lineage's weights reads them with safetensors.
    draft.requirements.setdefault("torch", torch.__version__.split("+")[0])
    needs = ["onnxruntime"] if any(e.name == "onnx" for e in kept) else []
    needs += ["safetensors"] if any(e.weights for e in kept) else []
    for dist in needs:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            draft.requirements.setdefault(dist, importlib.metadata.version(dist))
    (root / "requirements.txt").write_text(built_requirements(draft.requirements), encoding="utf-8")
    section = forward_section(
        draft.plan, draft.lowered, kept, draft.graph_source, job.device, job.max_batch
    )
    (root / MANIFEST_FILE).unlink(missing_ok=True)
    for cache in list(root.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)
    writer.commit(
        {
            **draft.base,
            "forward": section,
            "cpp": cpp,
            "extra": {
                "build": {
                    "source": job.module,
                    "backend_requested": job.backend,
                    "attempts": [list(a) for a in job.attempts],
                    "seconds": round(time.perf_counter() - job.started, 3),
                    "device": job.device,
                    "notes": job.notes,
                }
            },
        }
    )


def _version() -> str:
    from padlc import __version__

    return __version__
