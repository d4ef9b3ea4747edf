"""``padl_runtime.load``: open a built ``.padl`` artifact as a :class:`CompiledPipeline`."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from padl_runtime.backends import LOADERS
from padl_runtime.errors import ArtifactError, BackendUnavailableError
from padl_runtime.manifest import BackendEntry, read_manifest, verify_files
from padl_runtime.package import ArtifactPackage, StageFunction
from padl_runtime.pipeline import CompiledPipeline

__all__ = ["load"]


def _choose(
    path: Path, backends: tuple[BackendEntry, ...], wanted: str | None, device: str
) -> list[tuple[BackendEntry, str | None]]:
    """Every backend with the reason it cannot run here (``None``: usable), asked-for first."""
    if wanted is not None and not any(b.name == wanted for b in backends):
        present = ", ".join(b.name for b in backends) or "none"
        rebuild = (
            f"Rebuild with `padlc build --backend {wanted}`, or load one of those."
            if wanted in LOADERS
            else f"{wanted!r} is not a backend (backends: {', '.join(sorted(LOADERS))})."
        )
        raise BackendUnavailableError(
            f"{path} has no {wanted!r} forward (it has: {present}). {rebuild}", path=str(path)
        )
    # A backend asked for by name is that backend or an error, never another one.
    ordered = [b for b in backends if b.name == wanted] if wanted is not None else list(backends)
    out = []
    for entry in ordered:
        loader = LOADERS.get(entry.name)
        reason = (
            f"this padl_runtime does not know backend {entry.name!r}"
            if loader is None
            else loader.unavailable(entry, device)
        )
        out.append((entry, reason))
    return out


def load(
    path: str | os.PathLike[str], device: str | None = None, backend: str | None = None
) -> CompiledPipeline:
    """Load a built artifact: check its manifest and file hashes, then its stages and forward.

    ``device`` defaults to the device it was built for when available here, else the CPU.
    ``backend`` picks one of the artifact's forward backends, and only that one; by default the
    first usable one in the manifest's order of preference, where a backend that cannot run here
    (AOTInductor code for another architecture, onnxruntime not installed) is skipped with a
    warning when another one can. :class:`~padl_runtime.BackendUnavailableError` is raised when
    none can, when the backend asked for cannot, and for a CUDA device without CUDA.

    >>> pipeline = load("model.padl")          # doctest: +SKIP
    >>> pipeline.infer_apply("a raw item")     # doctest: +SKIP
    """
    root = Path(path)
    manifest = read_manifest(root)
    verify_files(root, manifest)
    section = manifest.forward
    if manifest.kind != "built" or section is None:
        raise ArtifactError(
            f"{root} is a saved pipeline, not a built one: it has no compiled forward. Load it "
            "with padlc.load, or build it with `padlc build`.",
            path=str(root),
        )
    if device is None:
        device = section.device
        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            device = "cpu"
    try:
        device = str(torch.device(device))
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a torch device ('cpu', 'cuda', 'cuda:1')."
        ) from exc
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError(
            f"{root}: device {device!r} was asked for, but CUDA is not available here (torch "
            f"{torch.__version__}). Load it with device='cpu', or install a CUDA build of torch.",
            path=str(root),
        )
    candidates = _choose(root, section.backends, backend, device)
    usable = [(entry, reason) for entry, reason in candidates if reason is None]
    if not usable:
        reasons = "; ".join(f"{e.name}: {r}" for e, r in candidates)
        raise BackendUnavailableError(
            f"{root}: no forward backend in the artifact can run on {device} ({reasons}). "
            "Rebuild it here with `padlc build`, or install what is missing.",
            path=str(root),
        )
    chosen = usable[0][0]
    skipped = [
        (e, r)
        for e, r in candidates
        if r is not None and candidates.index((e, r)) < candidates.index(usable[0])
    ]
    for entry, reason in skipped:
        warnings.warn(
            f"{root}: skipping the {entry.name!r} forward ({reason}); using {chosen.name!r}.",
            RuntimeWarning,
            stacklevel=2,
        )
    package = ArtifactPackage(root)
    stage_module = section.stage_module
    preprocess = postprocess = None
    if stage_module:
        module = package.module(stage_module)
        if getattr(module, "preprocess", None) is not None:
            preprocess = StageFunction(package, stage_module, "preprocess")
        if getattr(module, "postprocess", None) is not None:
            postprocess = StageFunction(package, stage_module, "postprocess")
    loaded = LOADERS[chosen.name].load(root, chosen, device, package)
    return CompiledPipeline(
        root,
        manifest,
        preprocess=preprocess,
        forward=loaded.fn,
        flat=loaded.flat,
        postprocess=postprocess,
        backend=chosen,
        device=device,
        fixed_shapes=loaded.fixed_shapes,
    )
