"""``padlc.build``: compile a pipeline into a verified ``.padl`` artifact.

1. Run the eager pipeline on the example inputs (the reference outputs).
2. Trace it into the IR, stage by stage; resolve mode switches for inference; move trailing
   batch-safe preprocessing steps into the forward (:mod:`padlc.builder.move`).
3. Generate ``stages.py`` (preprocess/postprocess) from the captured user code.
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from padl_runtime.manifest import MANIFEST_FILE, BackendEntry
from padlc.artifact import ArtifactWriter, artifact_path
from padlc.artifact.saving import requirements_text, stage_layout
from padlc.builder.examples import batched_outputs, example_batch, example_outputs
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
from padlc.lowering import BACKENDS, LoweredForward, LoweringContext, build_graph, strategy

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
    """Compile ``pipeline`` into the artifact directory ``path``, verified on ``inputs``.

    ``inputs`` are raw examples (what ``infer_apply`` takes; at least two when the pipeline has a
    ``batch``, so the batch axis is traced as dynamic). Options: ``backend`` (``auto``, ``export``,
    ``aoti``, ``torchscript``, ``onnx``, ``eager``, or a list of them: the artifact then holds one
    verified forward per entry, and the runtime prefers them in that order), ``device`` (where the
    forward is traced and verified: the pipeline is moved there for the build and back after it),
    ``max_batch``, ``force_overwrite``,
    ``move_to_forward`` (default True), ``tolerance``, ``module`` (recorded), ``log`` (progress
    callback). Raises :class:`~padlc.BuildError` (bad inputs, existing target, failed
    verification) or :class:`~padlc.LoweringError` (a forward the chosen backend cannot compile,
    naming the transform and its line).

    >>> import padlc                                                             # doctest: +SKIP
    >>> padlc.build(pipeline, "model.padl", inputs=examples, backend="export")  # doctest: +SKIP
    """
    from padlc.language.apply import layer_modes

    # Layers are traced in eval mode (as infer_apply runs them) and on the build's device, and
    # restored afterwards.
    device = str(torch.device(options.get("device", "cpu")))
    with layer_modes(pipeline.pd_layers, training=False), _on_device(pipeline, device):
        return _build(pipeline, path, inputs=inputs, **options)


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
    pipeline.pd_to(device)
    try:
        yield
    finally:
        for layer, where in layers:
            if where is not None:
                layer.to(where)
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
    say = log or (lambda message: None)
    target = artifact_path(path).absolute()
    if target.exists() and not force_overwrite:
        raise BuildError(
            f"{target} already exists. Pass force_overwrite=True (--force) to replace it, or choose another path."
        )
    requested = (backend,) if isinstance(backend, str) else tuple(backend)
    if not requested:
        raise BuildError("No backend requested: pass backend='auto', a name, or a list of names.")
    slots = [strategy(name) for name in requested]
    inputs = list(inputs)
    if not inputs:
        raise BuildError("No example inputs: pass a list of raw items, e.g. inputs=[item1, item2].")
    plan = BuildPlan(pipeline, move_to_forward, inputs, tolerance)
    notes: list[str] = []
    if not plan.has_batch:
        notes.append(
            "the pipeline has no `batch` marker, so there is no forward stage to compile: it is "
            "built eager (everything before `unbatch` runs per item in stages.py). Add "
            "`batch`/`unbatch` around the model to compile it."
        )
        slots = [("eager",)]
    elif len(inputs) < 2:
        raise BuildError(
            f"Got {len(inputs)} example input; the build needs at least 2, so the batch axis is "
            "traced with a batch of several items and stays dynamic (a batch of 1 would be "
            "specialised). Pass two or more raw items, e.g. inputs=[item1, item2]."
        )
    expected = example_outputs(pipeline, inputs)
    expected_batched = batched_outputs(pipeline, inputs, expected)
    stages = pipeline._pd_stages()
    label = repr(stages.forward)
    attempts: list[tuple[str, str]] = []

    def attempt(plan: BuildPlan) -> list[BackendEntry]:
        """Write, lower and verify the artifact for ``plan``; the backends kept."""
        with ArtifactWriter(target, force_overwrite=force_overwrite) as writer:
            root = writer.root
            shared = SharedData()  # identical data files of the generated modules, stored once
            lineage = capture_lineage(pipeline, root, shared)
            requirements = {**write_stage_module(plan, pipeline, root, shared), **lineage}
            lowered: LoweredForward | None = None
            graph_source = ""
            if plan.has_batch:
                batch = example_batch(root, inputs, STAGE_MODULE)
                try:
                    lowered = build_graph(
                        plan.forward, batch, label=label, device=device, max_batch=max_batch
                    )
                except LoweringError as exc:
                    if plan.moved_functions:  # try again with the functions left in the preprocess
                        raise MovedFunctionsFailed(str(exc).splitlines()[0]) from exc
                    raise
                graph_source = GRAPH_FILE
                (root / "forward").mkdir(exist_ok=True)
                (root / GRAPH_FILE).write_text(
                    "# "
                    + "\n# ".join(
                        header(pipeline, "the forward stage as a torch.fx graph (for reading)")
                    )
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
            base: dict[str, Any] = {
                "padlc_version": _version(),
                "kind": "built",
                "pipeline": repr(pipeline)[:500],
                "module": MODULE_FILE,  # the lineage: padlc.load reads a built artifact too
                "stages": stage_layout(pipeline),
                "python_version": platform.python_version(),
                "torch_version": torch.__version__,
            }
            context = LoweringContext(
                write_eager_forward=eager_forward_writer(plan, pipeline, shared)
            )
            kept: list[BackendEntry] = []

            def lower_one(name: str, alone: bool) -> BackendEntry | None:
                """Lower, write and verify one backend; ``None`` (with the reason recorded) if it
                fails and another candidate may follow (``alone``: it is the only one, so raise)."""
                impl = BACKENDS[name]
                reason = impl.unavailable(device)
                if reason is not None:
                    attempts.append((name, f"unavailable: {reason}"))
                    if alone:
                        raise BuildError(f"Backend {name!r} cannot build here: {reason}.")
                    return None
                say(f"lowering the forward with {name} ...")
                tick = time.perf_counter()
                try:
                    if lowered is None:  # no batch: the forward is generated Python in stages.py
                        from padlc.lowering import Lowered

                        result = Lowered(files=(STAGE_MODULE,))
                    else:
                        result = impl.lower(lowered, root, context)
                except Exception as exc:  # LoweringError, or torch failing inside a backend
                    first = str(exc).splitlines()[0] if str(exc).strip() else ""
                    if not isinstance(exc, LoweringError):
                        first = f"{type(exc).__name__}: {first}"
                    attempts.append((name, f"failed to lower: {first}"))
                    if plan.moved_functions:
                        raise MovedFunctionsFailed(f"{name}: {attempts[-1][1]}") from exc
                    if alone and isinstance(exc, LoweringError):
                        raise
                    if alone:
                        raise BuildError(
                            f"Backend {name!r} failed while compiling the forward: {first}. Try "
                            "another backend (--backend eager always builds)."
                        ) from exc
                    return None
                seconds = time.perf_counter() - tick
                entry = BackendEntry(
                    name=name,
                    files=result.files,
                    device=device,
                    arch=result.arch,
                    torch_version=torch.__version__,
                    tolerance=tolerance,
                    build_seconds=round(seconds, 3),
                    note=result.note,
                )
                section = forward_section(
                    plan, lowered, (*kept, entry), graph_source, device, max_batch
                )
                write_manifest(root, {**base, "forward": section})
                if (
                    not verify
                ):  # the caller checks the artifact itself (the test matrix batches checks)
                    attempts.append(
                        (name, f"built, not verified (verify=False), lowered in {seconds:.1f} s")
                    )
                    if result.note:
                        notes.append(f"{name}: {result.note}")
                    return entry
                say(f"verifying the {name} artifact in a fresh process ...")
                check = verify_artifact(root, name, inputs, expected, expected_batched, tolerance)
                if check.ok:
                    attempts.append(
                        (
                            name,
                            f"verified (max abs error {check.max_abs_error:.3g}, lowered in {seconds:.1f} s)",
                        )
                    )
                    if result.note:
                        notes.append(f"{name}: {result.note}")
                    return BackendEntry(**{**_fields(entry), "max_abs_error": check.max_abs_error})
                attempts.append((name, f"verification failed: {check.message.splitlines()[0]}"))
                if plan.moved_functions:
                    raise MovedFunctionsFailed(f"{name}: {attempts[-1][1]}")
                if alone:
                    raise BuildError(
                        f"The {name} artifact does not reproduce the eager pipeline: {check.message}\n"
                        "Try another backend (--backend eager always matches) and report the pipeline."
                    )
                if result.files != (STAGE_MODULE,):
                    remove_files(root, result.files)
                return None

            # Each requested backend is one slot ("auto" tries several candidates in order); the
            # artifact keeps the first verified candidate of every slot, in the order requested.
            for candidates in slots:
                if any(entry.name in candidates for entry in kept):
                    continue
                for name in candidates:
                    entry = lower_one(name, alone=len(candidates) == 1)
                    if entry is not None:
                        kept.append(entry)
                        break
                else:
                    tried = "; ".join(f"{n}: {o}" for n, o in attempts)
                    raise BuildError(f"No backend could build a verified artifact ({tried}).")
            chosen = next((e for e in kept if e.name in ("torchscript", "aoti")), kept[0])
            cpp = cpp_section(plan, lowered, chosen, root, notes)
            # The compiled forward needs torch even when the captured code does not import it.
            requirements.setdefault("torch", torch.__version__.split("+")[0])
            (root / "requirements.txt").write_text(
                requirements_text(requirements), encoding="utf-8"
            )
            section = forward_section(plan, lowered, tuple(kept), graph_source, device, max_batch)
            (root / MANIFEST_FILE).unlink(missing_ok=True)
            for cache in list(root.rglob("__pycache__")):
                shutil.rmtree(cache, ignore_errors=True)
            writer.commit(
                {
                    **base,
                    "forward": section,
                    "cpp": cpp,
                    "extra": {
                        "build": {
                            "source": module,
                            "backend_requested": backend,
                            "attempts": [list(a) for a in attempts],
                            "seconds": round(time.perf_counter() - started, 3),
                            "device": device,
                            "notes": notes,
                            "modes": "IfInMode switches resolved for infer mode",
                        }
                    },
                }
            )
        return kept

    # With moved functions (vmap steps) the artifact is tried first; if a backend cannot lower or
    # reproduce them, the whole artifact (stages.py is shared) is built again moving only `same`.
    try:
        kept = attempt(plan)
    except MovedFunctionsFailed as exc:
        notes.append(
            f"moving {', '.join(f'`{n}`' for n in plan.moved_functions)} into the forward "
            f"(torch.vmap) failed ({exc}); built again without moving functions"
        )
        plan = BuildPlan(pipeline, move_to_forward, inputs, tolerance, functions=False)
        kept = attempt(plan)
    return BuildResult(
        path=target,
        backend=kept[0].name,
        backends=tuple(e.name for e in kept),
        attempts=tuple(attempts),
        moved_to_forward=plan.moved,
        max_abs_error=kept[0].max_abs_error,
        seconds=time.perf_counter() - started,
        notes=tuple(notes),
    )


def _fields(entry: BackendEntry) -> dict[str, Any]:
    return {f: getattr(entry, f) for f in entry.__dataclass_fields__}


def _version() -> str:
    from padlc import __version__

    return __version__
