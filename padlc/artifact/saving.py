"""``padlc.save`` and ``padlc.load``: a pipeline with its code, weights and data in a ``.padl`` directory."""

from __future__ import annotations

import datetime
import hashlib
import importlib.util
import itertools
import os
import platform
import sys
import types
from pathlib import Path
from typing import Any

import torch

from padl_runtime.errors import ArtifactError
from padl_runtime.manifest import StageLayout, read_manifest, verify_files
from padl_runtime.values import load_weights
from padlc.artifact.writer import ArtifactWriter, artifact_path
from padlc.capture import (
    MODULE_FILE,
    WEIGHTS_FILE,
    capture_pipeline,
    hooked_transforms,
    loading_params,
)
from padlc.language.base import Transform

__all__ = ["load", "save"]

REQUIREMENTS_FILE = "requirements.txt"
_COUNTER = itertools.count()


def stage_layout(pipeline: Transform) -> StageLayout:
    stages = pipeline._pd_stages()
    return StageLayout(
        preprocess=stages.preprocess._pd_short_repr(),
        forward=stages.forward._pd_short_repr(),
        postprocess=stages.postprocess._pd_short_repr(),
        has_batch=bool(stages.has_batch),
        has_unbatch=bool(stages.has_unbatch),
    )


def requirements_text(requirements: dict[str, str]) -> str:
    lines = [f"# python {platform.python_version()}"]
    lines += [f"{dist}=={version}" for dist, version in sorted(requirements.items())]
    return "\n".join(lines) + "\n"


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


def load(path: str | os.PathLike[str], **params: Any) -> Transform:
    """Load a pipeline saved by :func:`padlc.save` (or built by ``padlc build``): the same
    transforms, trainable, with their weights; ``params`` override ``param(name, default)`` values.

    The manifest is checked first (every file present with its recorded SHA-256, a known format
    version): a damaged artifact raises :class:`padlc.ArtifactError` naming the file before any of
    its code runs. Loading never unpickles anything.
    """
    root = Path(path)
    if not root.exists() and artifact_path(root).exists():
        root = artifact_path(root)
    manifest = read_manifest(root)
    verify_files(root, manifest)
    listed = {entry.path for entry in manifest.files}
    module_file = manifest.module
    if manifest.kind == "built" and module_file not in listed and MODULE_FILE in listed:
        module_file = MODULE_FILE  # an older build, whose `module` held the build's source
    if module_file not in listed:
        raise ArtifactError(
            f"{root}: the module {module_file!r} is not listed in manifest.json, so it cannot "
            "be verified. Re-save the pipeline.",
            path=str(root),
            file=module_file,
        )
    module = _execute(root, module_file, params)
    main = getattr(module, "_pd_main", None)
    if not isinstance(main, Transform):
        raise ArtifactError(
            f"{root / module_file} does not define `_pd_main` as a transform.",
            path=str(root),
            file=module_file,
        )
    layers = list(main.pd_layers) + list(getattr(module, "_pd_extra_layers", []))
    if WEIGHTS_FILE in listed:
        load_weights(root / module_file, WEIGHTS_FILE, layers)
    for i, t in enumerate(hooked_transforms(main, "post_load")):
        hook = getattr(t, "post_load", None)
        if callable(hook):
            hook(root, i)
    return main


def _execute(root: Path, relative: str, params: dict[str, Any]) -> types.ModuleType:
    file = (root / relative).resolve()
    digest = hashlib.sha256(str(file).encode()).hexdigest()[:10]
    # A unique module name: artifacts never shadow each other or a user module.
    name = f"_padl_artifact_{digest}_{next(_COUNTER)}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has a loader
        raise ArtifactError(f"Cannot load {file} as a module.", path=str(root), file=relative)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = (
        module  # classes defined in the module (dataclasses, pickling by workers) look it up
    )
    with loading_params(params) as scope:
        try:
            spec.loader.exec_module(module)
        except ImportError as exc:
            del sys.modules[name]
            raise ArtifactError(
                f"{file} imports {exc.name or 'a module'!r}, which is not installed: {exc}. "
                f"Install the packages in {root / REQUIREMENTS_FILE}.",
                path=str(root),
                file=relative,
            ) from exc
        except Exception as exc:
            del sys.modules[name]
            raise ArtifactError(
                f"Running {file} failed ({type(exc).__name__}: {exc}); see the traceback above.",
                path=str(root),
                file=relative,
            ) from exc
    unknown = sorted(set(params) - set(scope.declared))
    if unknown:
        del sys.modules[name]
        declared = sorted(set(scope.declared))
        raise ValueError(
            f"Unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for "
            f"padlc.load({str(root)!r}); the pipeline's params are: "
            f"{', '.join(declared) if declared else '(none)'}."
        )
    return module
