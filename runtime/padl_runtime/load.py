"""``padl_runtime.load``: open a built ``.padl`` artifact as a :class:`CompiledPipeline`."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch

from padl_runtime.artifact import Artifact
from padl_runtime.backends import LOADERS
from padl_runtime.errors import ArtifactError, BackendUnavailableError
from padl_runtime.manifest import BackendEntry
from padl_runtime.package import ArtifactPackage, StageFunction
from padl_runtime.pipeline import CompiledPipeline
from padl_runtime.trust import Executes, KeyLike, require_trust

__all__ = ["establish_trust", "load"]


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


def _runs(stage_module: str | None, backends: Iterable[BackendEntry]) -> list[tuple[str, Executes]]:
    """What loading the stage module and these forwards runs: (file, what it runs)."""
    runs: list[tuple[str, Executes]] = [(stage_module, "python")] if stage_module else []
    for entry in backends:
        loader = LOADERS.get(entry.name)
        # a backend this runtime does not know is never loaded; count it as code all the same
        runs += [(file, loader.executes if loader else "python") for file in entry.files]
    return runs


def establish_trust(
    path: str | os.PathLike[str],
    *,
    backend: str | None = None,
    trust_code: bool = False,
    trusted_keys: Iterable[KeyLike] | None = None,
) -> str:
    """Establish trust in the built artifact at ``path`` here, as :func:`load` would, without
    loading it; the SHA-256 of its manifest, to pass as ``load(path, trusted_manifest=...)`` in
    the processes that load it elsewhere (Ray actors on other machines, which have neither this
    trust store nor these keys).

    Trust covers whatever those loads may run: the stage module and ``backend``'s forward, or,
    when no backend is named, every forward of the artifact (the other machines may pick another
    one, for their device). :class:`~padl_runtime.trust.UntrustedArtifactError` as for
    :func:`load`.

    >>> digest = establish_trust("model.padl")                        # doctest: +SKIP
    >>> pipeline = load("model.padl", trusted_manifest=digest)        # on a worker  # doctest: +SKIP
    """
    artifact = Artifact.open(path)
    section = artifact.manifest.forward
    if artifact.manifest.kind != "built" or section is None:
        raise ArtifactError(
            f"{path} is a saved pipeline, not a built one: it has no compiled forward. Build it "
            "with `padlc build`.",
            path=str(path),
        )
    backends = [b for b in section.backends if backend is None or b.name == backend]
    if not backends:
        present = ", ".join(b.name for b in section.backends) or "none"
        raise BackendUnavailableError(
            f"{path} has no {backend!r} forward (it has: {present}).", path=str(path)
        )
    require_trust(
        artifact,
        _runs(section.stage_module, backends),
        trust_code=trust_code,
        trusted_keys=trusted_keys,
    )
    return artifact.manifest_sha256


def load(
    path: str | os.PathLike[str],
    device: str | None = None,
    backend: str | None = None,
    *,
    trust_code: bool = False,
    trusted_keys: Iterable[KeyLike] | None = None,
    trusted_manifest: str | None = None,
) -> CompiledPipeline:
    """Load a built artifact: check its manifest, establish trust, then load its stages and
    forward from the verified bytes of the files the manifest lists.

    ``device`` defaults to the device it was built for when available here, else the CPU.
    ``backend`` picks one of the artifact's forward backends, and only that one; by default the
    first usable one in the manifest's order of preference, where a backend that cannot run here
    (AOTInductor code for another architecture, onnxruntime not installed) is skipped with a
    warning when another one can. :class:`~padl_runtime.BackendUnavailableError` is raised when
    none can, when the backend asked for cannot, and for a CUDA device without CUDA.

    Loading runs the artifact's code (its generated stage module; an ``eager`` forward's Python,
    an ``aoti`` forward's native code) only when trust is established (docs/security.md): you
    wrote it on this machine (``padlc build`` records it in your trust store), ``trust_code=True``,
    or it is signed by one of ``trusted_keys`` (paths to ed25519 public keys, or key objects) or
    a key configured in ``PADL_TRUSTED_KEYS``. Otherwise
    :class:`~padl_runtime.trust.UntrustedArtifactError` says what would run and how to inspect it.
    ``trusted_manifest`` hands over trust established in another process or on another machine
    (:func:`establish_trust` there): the load goes on only if the artifact's manifest is exactly
    the one trusted there.

    >>> pipeline = load("model.padl")          # doctest: +SKIP
    >>> pipeline.infer_apply("a raw item")     # doctest: +SKIP
    """
    artifact = Artifact.open(path)
    root = Path(path)
    manifest = artifact.manifest
    section = manifest.forward
    if manifest.kind != "built" or section is None:
        raise ArtifactError(
            f"{root} is a saved pipeline, not a built one: it has no compiled forward. Load it "
            "with padlc.load, or build it with `padlc build`.",
            path=str(root),
        )
    if device is None:
        try:
            device = str(torch.device(section.device))
        except (RuntimeError, ValueError, TypeError) as exc:
            raise ArtifactError(
                f"{root}: forward.device {section.device!r} in manifest.json is not a torch "
                "device. The manifest is damaged; rebuild the artifact.",
                path=str(root),
                file="manifest.json",
            ) from exc
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
    stage_module = section.stage_module
    loader = LOADERS[chosen.name]
    require_trust(
        artifact,
        _runs(stage_module, [chosen]),
        trust_code=trust_code,
        trusted_keys=trusted_keys,
        trusted_manifest=trusted_manifest,
    )
    artifact.check_present()
    package = ArtifactPackage(artifact)

    def stage(name: str) -> StageFunction | None:
        if not stage_module or not name:
            return None
        if getattr(package.module(stage_module), name, None) is None:
            return None  # the pipeline has no such stage (`preprocess = None`)
        return StageFunction(package, stage_module, name)

    infer, evals = section.mode("infer"), section.mode("eval")
    preprocess, postprocess = stage(infer.preprocess), stage(infer.postprocess)
    if evals == infer:
        eval_stages = (preprocess, postprocess)
    else:
        eval_stages = (
            (None, None)
            if evals.unavailable
            else (stage(evals.preprocess), stage(evals.postprocess))
        )
    eval_forward = stage(evals.forward) if evals.forward and not evals.unavailable else None
    loaded = loader.load(artifact, chosen, device, package)
    artifact.release()
    missing = [key for key in ("input_spec", "output_spec") if not getattr(section, key)]
    if loaded.flat and missing:
        raise ArtifactError(
            f"{root}/manifest.json: field 'forward.{missing[0]}' is missing or empty, but the "
            f"{chosen.name} forward takes and returns flat tensors, rebuilt through it. The "
            "manifest is damaged or was edited; rebuild the artifact.",
            path=str(root),
            file="manifest.json",
        )
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
        eval_stages=eval_stages,
        eval_unavailable=evals.unavailable,
        eval_forward=eval_forward,
    )
