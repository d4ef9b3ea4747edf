"""``padlc.save`` and ``padlc.load``: a pipeline with its code, weights and data in a ``.padl`` directory."""

from __future__ import annotations

import datetime
import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from padl_runtime.artifact import Artifact, reading
from padl_runtime.errors import ArtifactError
from padl_runtime.keywords import suggest_keywords
from padl_runtime.manifest import Manifest, StageLayout
from padl_runtime.package import ArtifactPackage
from padl_runtime.trust import require_trust
from padl_runtime.values import load_weights
from padlc.artifact.writer import ArtifactWriter, artifact_path
from padlc.capture import (
    MODULE_FILE,
    WEIGHTS_FILE,
    WEIGHTS_LEFT_OUT,
    capture_pipeline,
    hooked_transforms,
    loading_params,
)
from padlc.language.base import Transform

__all__ = ["load", "save"]

REQUIREMENTS_FILE = "requirements.txt"


def stage_layout(pipeline: Transform) -> StageLayout:
    stages = pipeline._pd_stages()
    return StageLayout(
        preprocess=stages.preprocess._pd_short_repr(),
        forward=stages.forward._pd_short_repr(),
        postprocess=stages.postprocess._pd_short_repr(),
        has_batch=bool(stages.has_batch),
        has_unbatch=bool(stages.has_unbatch),
    )


def requirements_text(requirements: dict[str, str], notes: Sequence[str] = ()) -> str:
    """``requirements.txt``: the Python version and ``notes`` as comments, then one pin a line."""
    lines = [f"# python {platform.python_version()}", *(f"# {note}" for note in notes)]
    lines += [f"{dist}=={version}" for dist, version in sorted(requirements.items())]
    return "\n".join(lines) + "\n"


@suggest_keywords
def save(pipeline: Transform, path: str | os.PathLike[str], force_overwrite: bool = False) -> Path:
    """Save ``pipeline`` with its code, weights and data to the directory ``path`` (``.padl`` is
    added when missing); returns the directory.

    >>> import padlc
    >>> from padlc import transform
    >>> p = transform(lambda x: x + 1) >> transform(lambda x: x * 2)
    >>> saved = padlc.save(p, tmp_path / "double")            # doctest: +SKIP
    >>> padlc.load(saved)(1)                                   # doctest: +SKIP
    4

    Raises :class:`padlc.SaveError` when something in the pipeline cannot be saved (the message
    names it and says what to do) and ``FileExistsError`` when ``path`` exists and is not empty
    (pass ``force_overwrite=True``). The directory appears only when complete; a failure while
    overwriting leaves the old artifact as it was.
    """
    import padlc

    if not isinstance(pipeline, Transform):
        raise TypeError(f"padlc.save() saves transforms; got a {type(pipeline).__name__}.")
    with ArtifactWriter(path, force_overwrite=force_overwrite) as writer:
        captured = capture_pipeline(pipeline, writer.root)
        (writer.root / REQUIREMENTS_FILE).write_text(
            requirements_text(captured.requirements), encoding="utf-8"
        )
        return writer.commit(
            {
                "padlc_version": padlc.__version__,
                "kind": "saved",
                "pipeline": repr(pipeline),
                "module": MODULE_FILE,
                "stages": stage_layout(pipeline),
                "python_version": platform.python_version(),
                "torch_version": torch.__version__,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds"
                ),
            }
        )


@suggest_keywords(
    hint="A pipeline's own params go in one mapping: padlc.load(path, params={'threshold': 0.9})."
)
def load(
    path: str | os.PathLike[str],
    *,
    params: Mapping[str, Any] | None = None,
    trust_code: bool = False,
    trusted_keys: Iterable[Any] | None = None,
) -> Transform:
    """Load a pipeline saved by :func:`padlc.save` (or built by ``padlc build``): the same
    transforms, trainable, with their weights. ``params`` override the values the pipeline
    declared with ``param(name, default)``: ``padlc.load(path, params={"threshold": 0.9})``.

    Loading runs the artifact's ``pipeline.py``, so it needs trust (docs/security.md): an
    artifact you saved or built on this machine loads as it is; another one raises
    :class:`padlc.UntrustedArtifactError` (read it first with ``padlc inspect PATH --code``)
    unless you pass ``trust_code=True``, or it is signed by one of ``trusted_keys`` (or a key in
    ``PADL_TRUSTED_KEYS``). The manifest is checked first (a known format, every file inside the
    artifact with its recorded SHA-256), and only the verified bytes it lists are run or read: a
    damaged artifact raises :class:`padlc.ArtifactError` naming the file. Nothing is unpickled.
    """
    if params is not None and not isinstance(params, Mapping):
        raise TypeError(
            f"params must be a mapping of the pipeline's param names to values, e.g. "
            f"padlc.load(path, params={{'threshold': 0.9}}); got {type(params).__name__} "
            f"{params!r}."
        )
    params = dict(params or {})
    root = Path(path)
    if not root.exists() and artifact_path(root).exists():
        root = artifact_path(root)
    artifact = Artifact.open(root)
    manifest = artifact.manifest
    listed = manifest.listed()
    if manifest.kind == "built" and not manifest.module:
        raise ArtifactError(_without_lineage(root, manifest), path=str(root))
    module_file = manifest.module
    if manifest.kind == "built" and module_file not in listed and MODULE_FILE in listed:
        module_file = MODULE_FILE  # an older build, whose `module` held the build's source
    require_trust(
        artifact, [(module_file, "python")], trust_code=trust_code, trusted_keys=trusted_keys
    )
    artifact.check_present()
    with reading(artifact):
        main, layers, left_out = _execute(artifact, module_file, params)
        _load_weights(artifact, module_file, layers, left_out)
    artifact.release()
    for i, t in enumerate(hooked_transforms(main, "post_load")):
        hook = getattr(t, "post_load", None)
        if callable(hook):
            hook(root, i)
    return main


def _without_lineage(root: Path, manifest: Manifest) -> str:
    """What ``padlc.load`` says of a built artifact without a lineage: why, what is missing, what
    to do instead."""
    lines = [
        f"{root} has no lineage (pipeline.py and its weights), which padlc.load rebuilds the "
        f"trainable pipeline from: {manifest.without_lineage or 'it was built without one'}."
    ]
    for entry in manifest.compiled_only:
        where = f" ({entry.where})" if entry.where else ""
        lines.append(f"  compiled-only: `{entry.transform}`{where}: {entry.reason}")
    lines.append(
        "Serve it with padl_runtime.load(path) (infer_apply, eval_apply), or build it again "
        + (
            "with padlc's capture able to rebuild those transforms (see above) to keep a lineage."
            if manifest.compiled_only
            else "without --slim (slim=False) to keep the lineage."
        )
    )
    return "\n".join(lines)


def _execute(
    artifact: Artifact, relative: str, params: dict[str, Any]
) -> tuple[Transform, list[torch.nn.Module], bool]:
    """Run the lineage module from its verified bytes; its ``_pd_main``, its layers and whether
    their weights were left out on purpose."""
    root = artifact.root
    package = ArtifactPackage(artifact)
    with loading_params(params) as scope:
        try:
            module = package.module(relative)
        except ArtifactError:
            raise
        except ImportError as exc:
            raise ArtifactError(
                f"{root / relative} imports {exc.name or 'a module'!r}, which is not installed: "
                f"{exc}. Install the packages in {root / REQUIREMENTS_FILE}.",
                path=str(root),
                file=relative,
            ) from exc
        except Exception as exc:
            raise ArtifactError(
                f"Running {root / relative} failed ({type(exc).__name__}: {exc}); see the "
                "traceback above.",
                path=str(root),
                file=relative,
            ) from exc
    unknown = sorted(set(params) - set(scope.declared))
    if unknown:
        declared = [
            f"{p} ({scope.descriptions[p]})" if p in scope.descriptions else p
            for p in sorted(set(scope.declared))
        ]
        raise ValueError(
            f"Unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for "
            f"padlc.load({str(root)!r}); the pipeline's params are: "
            f"{', '.join(declared) if declared else '(none)'}."
        )
    if scope.missing:
        missing = sorted(set(scope.missing))
        described = [
            f"{p} ({scope.descriptions[p]})" if p in scope.descriptions else p for p in missing
        ]
        example = ", ".join(f"{p!r}: ..." for p in missing)
        raise ValueError(
            f"padlc.load({str(root)!r}) needs the parameter{'s' if len(missing) > 1 else ''} "
            f"{', '.join(described)}: the pipeline was saved with param(..., use_default=False). "
            f"Pass {'them' if len(missing) > 1 else 'it'}: padlc.load(path, params={{{example}}})."
        )
    main = getattr(module, "_pd_main", None)
    if not isinstance(main, Transform):
        raise ArtifactError(
            f"{root / relative} does not define `_pd_main` as a transform.",
            path=str(root),
            file=relative,
        )
    layers = list(main.pd_layers) + list(getattr(module, "_pd_extra_layers", []))
    return main, layers, getattr(module, WEIGHTS_LEFT_OUT, False) is True


def _load_weights(
    artifact: Artifact, module_file: str, layers: list[torch.nn.Module], left_out: bool
) -> None:
    """The layers' weights from ``weights.safetensors``; an :class:`ArtifactError` when layers
    hold state but the manifest lists no weights (a removed file would leave them random), unless
    the module says they were left out on purpose (``pd_save_options``)."""
    if WEIGHTS_FILE in artifact.manifest.listed():
        load_weights(artifact.root / module_file, WEIGHTS_FILE, layers)
        return
    stateful = next((layer for layer in layers if layer.state_dict()), None)
    if stateful is not None and not left_out:
        raise ArtifactError(
            f"{artifact.root}: the pipeline's layers hold weights ({type(stateful).__name__}), "
            f"but manifest.json lists no {WEIGHTS_FILE}: loading would leave them at random "
            "values. The artifact is incomplete or was edited; copy it again or re-save it.",
            path=str(artifact.root),
            file=WEIGHTS_FILE,
        )
