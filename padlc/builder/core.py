"""``padlc.build``: compile a pipeline into a verified ``.padl`` artifact.

1. Run the eager pipeline on the example inputs (the reference outputs).
2. Trace it into the IR, stage by stage; resolve mode switches for inference; move trailing
   batch-safe preprocessing steps into the forward (:mod:`padlc.builder.move`).
3. Capture the lineage (``pipeline.py``, the weights) and generate ``stages.py``
   (preprocess/postprocess) from the captured user code; data they share is stored once.
4. Build the forward's fx graph on a batch of at least two examples; write ``forward/graph.py``.
5. Lower it with each backend of the strategy (``auto``: export, torchscript, eager) and verify
   the artifact in a fresh process without padlc; keep the first that matches the eager outputs.
   If a backend fails on a forward holding moved functions (``torch.vmap``), build the artifact
   again moving only ``same`` steps (the attempts and notes say why).
6. Commit the directory atomically with its manifest.
"""

from __future__ import annotations

import contextlib
import itertools
import platform
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import padl_runtime
from padl_runtime.manifest import MANIFEST_FILE, BackendEntry
from padlc.artifact import ArtifactWriter, artifact_path
from padlc.artifact.saving import requirements_text, stage_layout
from padlc.builder.examples import batched_outputs, example_batch, example_outputs, short
from padlc.builder.files import (
    GRAPH_FILE,
    STAGE_MODULE,
    capture_lineage,
    cpp_section,
    eager_forward_writer,
    forward_section,
    header,
    remove_files,
    write_manifest,
    write_stage_module,
)
from padlc.builder.plan import DEFAULT_TOLERANCE, BuildPlan, MovedFunctionsFailed
from padlc.builder.verify import verify_artifact
from padlc.capture import MODULE_FILE
from padlc.capture.shared import SharedData
from padlc.errors import BuildError, LoweringError
from padlc.language.base import Transform
from padlc.lowering import (
    BACKENDS,
    Lowered,
    LoweredForward,
    LoweringContext,
    build_graph,
    strategy,
)
from padlc.lowering.registry import quiet_torch_output

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


def build(
    pipeline: Transform,
    path: str | Path,
    *,
    inputs: Iterable[Any],
    **options: Any,
) -> BuildResult:
    """Compile ``pipeline`` into the artifact directory ``path`` (``.padl`` is added when it has
    another suffix or none), verified on ``inputs``.

    ``inputs`` are raw examples (what ``infer_apply`` takes; at least two when the pipeline has a
    ``batch``, so the batch axis is traced as dynamic). Options: ``backend`` (``auto``, ``export``,
    ``aoti``, ``torchscript``, ``onnx``, ``eager``, or a list of them: the artifact then holds one
    verified forward per entry, and the runtime prefers them in that order), ``device`` (where the
    forward is traced and verified: the pipeline is moved there for the build and back after it),
    ``max_batch`` (the largest batch the forward accepts, at least 2: it is traced on at most that
    many examples and verified in batches of at most that size), ``force_overwrite``,
    ``move_to_forward`` (default True), ``tolerance``, ``module`` (recorded), ``log`` (progress
    callback). Raises :class:`~padlc.BuildError` (not a pipeline, bad inputs or device, an
    existing or unwritable target, failed verification) or :class:`~padlc.LoweringError` (a
    forward the chosen backend cannot compile, naming the transform and its line).

    >>> import padlc                                                             # doctest: +SKIP
    >>> padlc.build(pipeline, "model.padl", inputs=examples, backend="export")  # doctest: +SKIP
    """
    from padlc.language.apply import layer_modes

    _check_pipeline(pipeline)
    # Layers are traced in eval mode (as infer_apply runs them) and on the build's device, and
    # restored afterwards.
    device = _build_device(options.get("device", "cpu"))
    with layer_modes(pipeline.pd_layers, training=False), _on_device(pipeline, device):
        return _build(pipeline, path, inputs=inputs, **options)


def _check_pipeline(pipeline: Any) -> None:
    """A :class:`BuildError` saying how to make a pipeline when ``pipeline`` is not a transform."""
    if isinstance(pipeline, Transform):
        return
    example = "`transform(prepare) >> batch >> transform(layer) >> unbatch`"
    if isinstance(pipeline, torch.nn.Module):
        got = f"the torch module {short(pipeline)}"
        how = f"Wrap the layer with padlc.transform and mark the batch around it, e.g. {example}."
    elif callable(pipeline):
        got = f"the function {short(pipeline)}"
        how = "Wrap it with padlc.transform: `transform(function)`."
    else:
        got = f"{type(pipeline).__name__} {short(pipeline)}"
        how = f"Build one from transforms, e.g. {example}."
    raise BuildError(f"padlc.build needs a padlc pipeline (a Transform), got {got}. {how}")


def _build_device(name: Any) -> str:
    """``name`` as a torch device string; a :class:`BuildError` when torch cannot parse it or the
    device is not available here."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise BuildError(
            f"Unknown device {name!r}: torch cannot parse it. Pass a torch device such as "
            "'cpu', 'cuda' or 'cuda:1' (--device)."
        ) from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            why = (
                f"this torch ({torch.__version__}) is built without CUDA"
                if torch.version.cuda is None
                else "no CUDA device is available"
            )
            raise BuildError(
                f"Cannot build on device {name!r}: {why}. Build on the CPU (device='cpu', "
                "--device cpu), or on a machine with a GPU and a CUDA build of torch."
            )
        if device.index is not None and device.index >= count:
            raise BuildError(
                f"Cannot build on device {name!r}: there are {count} CUDA device(s) here "
                f"(cuda:0 to cuda:{count - 1}). Pick one of them."
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise BuildError(
            f"Cannot build on device {name!r}: MPS is not available here. Build on the CPU "
            "(device='cpu', --device cpu)."
        )
    return str(device)


def _examples(inputs: Any) -> list[Any]:
    """``inputs`` as a list, or a :class:`BuildError` when it is not a collection of examples."""
    if not isinstance(inputs, str | bytes | Mapping):
        try:
            return list(inputs)
        except TypeError:
            pass
    raise BuildError(
        f"inputs must be a list of raw example items (what infer_apply takes), got "
        f"{type(inputs).__name__} {short(inputs)}. Pass two or more items, e.g. "
        "inputs=[item1, item2]."
    )


@contextlib.contextmanager
def _on_device(pipeline: Transform, device: str) -> Iterator[None]:
    """``pipeline`` moved to ``device`` for the duration of the build (the reference outputs the
    artifact is verified against are computed there too), then put back where it was."""
    transforms = list(pipeline.pd_iter_transforms())
    devices = [t._pd_device for t in transforms]
    layers = [(layer, _device_of(layer)) for layer in pipeline.pd_layers]
    if all(d == device for d in devices) and all(d in (None, device) for _, d in layers):
        yield
        return
    tags = [layer.__dict__.get("_pd_moved_to") for layer, _ in layers]  # see Transform.pd_to
    pipeline.pd_to(device)
    try:
        yield
    finally:
        for (layer, where), tag in zip(layers, tags, strict=True):
            if where is not None:
                layer.to(where)
            if tag is None:
                layer.__dict__.pop("_pd_moved_to", None)
            else:
                layer.__dict__["_pd_moved_to"] = tag
        for t, where in zip(transforms, devices, strict=True):
            t.__dict__["_pd_device"] = where


def _device_of(layer: torch.nn.Module) -> str | None:
    for tensor in itertools.chain(layer.parameters(), layer.buffers()):
        return str(tensor.device)
    return None


def _build(
    pipeline: Transform,
    path: str | Path,
    *,
    inputs: Iterable[Any],
    backend: str | Sequence[str] = "auto",
    device: str = "cpu",
    max_batch: int | None = None,
    force_overwrite: bool = False,
    move_to_forward: bool = True,
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
    requested = (backend,) if isinstance(backend, str) else tuple(backend)
    if not requested:
        raise BuildError("No backend requested: pass backend='auto', a name, or a list of names.")
    slots = [strategy(name) for name in requested]
    if max_batch is not None and (
        isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 2
    ):
        raise BuildError(
            f"max_batch must be an integer of at least 2, got {max_batch!r}: the forward is "
            "traced on a batch of two or more items so that its batch axis stays dynamic. Pass "
            "max_batch=2 or more (--max-batch N), or leave it unset for no bound."
        )
    examples = _examples(inputs)
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
        slots = [("eager",)]
    elif len(examples) < 2:
        raise BuildError(
            f"Got {len(examples)} example input; the build needs at least 2, so the batch axis is "
            "traced with a batch of several items and stays dynamic (a batch of 1 would be "
            "specialised). Pass two or more raw items, e.g. inputs=[item1, item2]."
        )
    expected = example_outputs(pipeline, examples)
    say = log or (lambda message: None)
    added = "" if given == Path(path) else " (the .padl suffix added to the path given)"
    say(f"writing {target}{added}")
    job = _Job(
        pipeline=pipeline,
        target=target,
        inputs=examples,
        backend=backend,
        slots=slots,
        device=device,
        max_batch=max_batch,
        force_overwrite=force_overwrite,
        tolerance=tolerance,
        verify=verify,
        module=module,
        say=say,
        started=started,
        expected=expected,
        expected_batched=batched_outputs(pipeline, examples, expected, max_batch),
        label=repr(pipeline._pd_stages().forward),
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
    )


@dataclass
class _Job:
    """One build: its options, the eager reference outputs, and what happened so far."""

    pipeline: Transform
    target: Path
    inputs: list[Any]
    backend: str | Sequence[str]  # as requested (recorded in the manifest)
    slots: list[tuple[str, ...]]  # per requested backend, the candidates in order
    device: str
    max_batch: int | None
    force_overwrite: bool
    tolerance: float
    verify: bool
    module: str
    say: Callable[[str], None]
    started: float
    expected: Any
    expected_batched: Any
    label: str
    attempts: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Draft:
    """The artifact directory of one attempt, before its commit: what every backend shares."""

    root: Path
    plan: BuildPlan
    requirements: dict[str, str]
    lowered: LoweredForward | None
    graph_source: str
    base: dict[str, Any]
    context: LoweringContext
    kept: list[BackendEntry] = field(default_factory=list)


def _attempt(job: _Job, plan: BuildPlan) -> list[BackendEntry]:
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
        # Each requested backend is one slot ("auto" tries several candidates in order); the
        # artifact keeps the first verified candidate of every slot, in the order requested.
        for candidates in job.slots:
            if any(entry.name in candidates for entry in draft.kept):
                continue
            for name in candidates:
                entry = _lower_one(job, draft, name, alone=len(candidates) == 1)
                if entry is not None:
                    draft.kept.append(entry)
                    break
            else:
                tried = "; ".join(f"{n}: {o}" for n, o in job.attempts)
                raise BuildError(f"No backend could build a verified artifact ({tried}).")
        _commit(job, draft, writer)
    return draft.kept


def _draft(job: _Job, plan: BuildPlan, root: Path) -> _Draft:
    """The files every backend shares: the lineage, the stage module, the forward's graph."""
    shared = SharedData()  # identical data files of the generated modules, stored once
    lineage = capture_lineage(job.pipeline, root, shared)
    requirements = {**write_stage_module(plan, job.pipeline, root, shared), **lineage}
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
        "module": MODULE_FILE,  # the lineage: padlc.load reads a built artifact too
        "stages": stage_layout(job.pipeline),
        "python_version": platform.python_version(),
        "torch_version": torch.__version__,
    }
    context = LoweringContext(write_eager_forward=eager_forward_writer(plan, job.pipeline, shared))
    return _Draft(root, plan, requirements, lowered, graph_source, base, context)


def _write_graph(job: _Job, plan: BuildPlan, root: Path, lowered: LoweredForward) -> None:
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


def _lower_one(job: _Job, draft: _Draft, name: str, alone: bool) -> BackendEntry | None:
    """Lower, write and verify one backend; ``None`` (with the reason recorded) if it fails and
    another candidate may follow (``alone``: it is the only one, so raise)."""
    impl = BACKENDS[name]
    reason = impl.unavailable(job.device)
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
        if draft.plan.moved_functions:
            raise MovedFunctionsFailed(f"{name}: {job.attempts[-1][1]}") from exc
        if alone and isinstance(exc, LoweringError):
            raise
        if alone:
            raise BuildError(
                f"Backend {name!r} failed while compiling the forward: {first.rstrip('.')}. Try "
                "another backend (--backend eager always builds)."
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
        if result.note:
            job.notes.append(f"{name}: {result.note}")
        return entry
    return _verified(job, draft, entry, result, alone)


def _verified(
    job: _Job, draft: _Draft, entry: BackendEntry, result: Lowered, alone: bool
) -> BackendEntry | None:
    """``entry`` with its measured error if the artifact reproduces the eager outputs in a fresh
    process; else ``None`` with its files removed (or an error when it was the only candidate)."""
    name, seconds = entry.name, entry.build_seconds
    job.say(f"verifying the {name} artifact in a fresh process ...")
    check = verify_artifact(
        draft.root, name, job.inputs, job.expected, job.expected_batched, job.tolerance
    )
    if check.ok:
        job.attempts.append(
            (
                name,
                f"verified (max abs error {check.max_abs_error:.3g}, lowered in {seconds:.1f} s)",
            )
        )
        if result.note:
            job.notes.append(f"{name}: {result.note}")
        return BackendEntry(**{**_fields(entry), "max_abs_error": check.max_abs_error})
    job.attempts.append((name, f"verification failed: {check.message.splitlines()[0]}"))
    if draft.plan.moved_functions:
        raise MovedFunctionsFailed(f"{name}: {job.attempts[-1][1]}")
    if alone:
        raise BuildError(
            f"The {name} artifact does not reproduce the eager pipeline: {check.message}\n"
            "Try another backend (--backend eager always matches) and report the pipeline."
        )
    if result.files != (STAGE_MODULE,):
        remove_files(draft.root, result.files)
    return None


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


def _commit(job: _Job, draft: _Draft, writer: ArtifactWriter) -> None:
    """Write the requirements and the final manifest, then move the directory into place."""
    root, kept = draft.root, tuple(draft.kept)
    chosen = next((e for e in kept if e.name in ("torchscript", "aoti")), kept[0])
    scriptable = any(e.name == "torchscript" for e in kept)
    cpp = cpp_section(draft.plan, draft.lowered, chosen, root, job.notes, scriptable)
    # The compiled forward needs torch even when the captured code does not import it.
    draft.requirements.setdefault("torch", torch.__version__.split("+")[0])
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
                    "modes": "IfInMode switches resolved for infer mode",
                }
            },
        }
    )


def _fields(entry: BackendEntry) -> dict[str, Any]:
    return {f: getattr(entry, f) for f in entry.__dataclass_fields__}


def _version() -> str:
    from padlc import __version__

    return __version__
