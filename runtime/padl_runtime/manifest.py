"""The on-disk format of a ``.padl`` directory: ``manifest.json``.

This module is the single definition of the format. The compiler (``padlc``) writes manifests with
these classes and the runtime (and the C++ library) read them; see docs/format.md for the reference.

A manifest lists every file of the artifact with its SHA-256 and size, so loading can refuse a
directory that is incomplete, edited or truncated before executing any of its code.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from padl_runtime.errors import ArtifactError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "BackendEntry",
    "CppSection",
    "FileEntry",
    "ForwardSection",
    "Manifest",
    "StageLayout",
    "file_entry",
    "read_manifest",
    "sha256_file",
    "verify_files",
]

FORMAT_NAME = "padl"
#: Bumped whenever a reader of the previous version could misread a new artifact.
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"

ArtifactKind = Literal["saved", "built"]
BACKEND_NAMES = ("aoti", "export", "torchscript", "onnx", "eager")


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of the artifact, relative to the artifact directory, with POSIX separators."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class StageLayout:
    """How the pipeline splits into stages; the strings are the stages' short ``repr``.

    ``has_unbatch``: the pipeline has ``unbatch``, so ``eval_apply`` yields one output per item even
    when nothing is left to run after it (absent in older manifests: ``False``)."""

    preprocess: str
    forward: str
    postprocess: str
    has_batch: bool
    has_unbatch: bool = False


@dataclass(frozen=True, slots=True)
class BackendEntry:
    """One compiled (or eager) form of the forward stage.

    ``name`` is one of ``aoti``, ``export``, ``torchscript``, ``onnx``, ``eager``. ``files`` are the
    files this backend needs. ``arch`` is set for native code (AOTInductor): the device it was
    compiled for (``"cpu-x86_64"``, ``"cuda-sm90"``); the runtime refuses to load it elsewhere.
    """

    name: str
    files: tuple[str, ...]
    device: str
    arch: str | None = None
    torch_version: str = ""
    max_abs_error: float | None = None
    tolerance: float = 0.0
    build_seconds: float = 0.0
    note: str = ""


@dataclass(frozen=True, slots=True)
class ForwardSection:
    """The compiled forward of a built artifact.

    ``stage_module`` is the generated Python module holding ``preprocess`` and ``postprocess``;
    ``graph_source`` is the readable source of the forward graph. ``inputs``/``outputs`` describe the
    forward's batched tensors (name, dtype, shape with ``"batch"`` for the batch axis).
    ``backends`` are ordered by preference.
    """

    backends: tuple[BackendEntry, ...]
    stage_module: str
    graph_source: str
    inputs: tuple[dict[str, Any], ...] = ()
    outputs: tuple[dict[str, Any], ...] = ()
    batch_dim: int = 0
    max_batch: int | None = None
    device: str = "cpu"
    moved_to_forward: tuple[str, ...] = ()
    #: tree specs (padl_runtime.treespec) of the forward's nested input batch and output
    input_spec: dict[str, Any] = field(default_factory=dict)
    output_spec: dict[str, Any] = field(default_factory=dict)

    def backend(self, name: str) -> BackendEntry | None:
        return next((b for b in self.backends if b.name == name), None)


@dataclass(frozen=True, slots=True)
class CppSection:
    """What the C++ library can run: the forward always (when a TorchScript or AOTI backend exists),
    and the whole pipeline when ``run_available`` (pre/post stages scripted into ``pipeline_file``)."""

    forward_file: str | None
    run_available: bool
    pipeline_file: str | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Manifest:
    """The parsed ``manifest.json`` of a ``.padl`` directory."""

    padlc_version: str
    kind: ArtifactKind
    pipeline: str
    module: str
    stages: StageLayout
    files: tuple[FileEntry, ...]
    python_version: str = ""
    torch_version: str = ""
    created: str = ""
    forward: ForwardSection | None = None
    cpp: CppSection | None = None
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    # -- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {"format": FORMAT_NAME, **data}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, path: str = "") -> Manifest:
        where = f"{path}/{MANIFEST_FILE}" if path else MANIFEST_FILE
        if not isinstance(data, Mapping) or data.get("format") != FORMAT_NAME:
            raise ArtifactError(
                f'{where} is not a padl manifest (no "format": "padl" entry).',
                path=path,
                file=MANIFEST_FILE,
            )
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ArtifactError(
                f"{where} has format version {version!r}; this runtime reads version "
                f"{FORMAT_VERSION}. Upgrade padl_runtime/padlc, or rebuild the artifact with "
                "the installed padlc.",
                path=path,
                file=MANIFEST_FILE,
            )
        try:
            forward = data.get("forward")
            cpp = data.get("cpp")
            return cls(
                format_version=version,
                padlc_version=str(data["padlc_version"]),
                kind=data["kind"],
                pipeline=str(data["pipeline"]),
                module=str(data["module"]),
                stages=_stage_layout(data["stages"]),
                files=tuple(FileEntry(**f) for f in data["files"]),
                python_version=str(data.get("python_version", "")),
                torch_version=str(data.get("torch_version", "")),
                created=str(data.get("created", "")),
                forward=None
                if forward is None
                else ForwardSection(
                    backends=tuple(
                        BackendEntry(**{**b, "files": tuple(b["files"])})
                        for b in forward["backends"]
                    ),
                    stage_module=forward["stage_module"],
                    graph_source=forward["graph_source"],
                    inputs=tuple(forward.get("inputs", ())),
                    outputs=tuple(forward.get("outputs", ())),
                    batch_dim=int(forward.get("batch_dim", 0)),
                    max_batch=forward.get("max_batch"),
                    device=str(forward.get("device", "cpu")),
                    moved_to_forward=tuple(forward.get("moved_to_forward", ())),
                    input_spec=dict(forward.get("input_spec", {})),
                    output_spec=dict(forward.get("output_spec", {})),
                ),
                cpp=None if cpp is None else CppSection(**cpp),
                extra=dict(data.get("extra", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(
                f"{where} is malformed ({type(exc).__name__}: {exc}). The artifact is damaged; "
                "rebuild or re-save it.",
                path=path,
                file=MANIFEST_FILE,
            ) from exc


def _stage_layout(data: Mapping[str, Any]) -> StageLayout:
    # Keys this runtime does not know are left out, so that a later writer may add some.
    known = StageLayout.__dataclass_fields__
    return StageLayout(**{key: value for key, value in data.items() if key in known})


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entry(root: str | os.PathLike[str], relative: str) -> FileEntry:
    """Describe ``root/relative`` for the manifest."""
    full = Path(root, relative)
    return FileEntry(
        path=Path(relative).as_posix(), sha256=sha256_file(full), size=full.stat().st_size
    )


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Parse ``path/manifest.json`` without checking the other files."""
    root = Path(path)
    if not root.exists():
        raise ArtifactError(f"No artifact at {root}: the path does not exist.", path=str(root))
    if not root.is_dir():
        raise ArtifactError(
            f"{root} is a file, but a .padl artifact is a directory. Pass the directory that "
            f"holds {MANIFEST_FILE}.",
            path=str(root),
        )
    manifest_path = root / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ArtifactError(
            f"{root} has no {MANIFEST_FILE}: it is not a .padl artifact, or it is incomplete.",
            path=str(root),
            file=MANIFEST_FILE,
        )
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(
            f"{manifest_path} is not valid JSON ({exc}). The artifact is damaged; rebuild or "
            "re-save it.",
            path=str(root),
            file=MANIFEST_FILE,
        ) from exc
    return Manifest.from_dict(data, path=str(root))


def verify_files(path: str | os.PathLike[str], manifest: Manifest) -> None:
    """Check that every file listed in the manifest is present with the recorded size and hash."""
    root = Path(path)
    for entry in manifest.files:
        full = root / entry.path
        if not full.is_file():
            raise ArtifactError(
                f"{root}: file {entry.path!r} listed in {MANIFEST_FILE} is missing. The artifact "
                "is incomplete; copy it again or rebuild it.",
                path=str(root),
                file=entry.path,
            )
        size = full.stat().st_size
        if size != entry.size:
            raise ArtifactError(
                f"{root}: file {entry.path!r} has {size} bytes, the manifest records "
                f"{entry.size} (truncated or edited). Copy the artifact again or rebuild it.",
                path=str(root),
                file=entry.path,
            )
        if sha256_file(full) != entry.sha256:
            raise ArtifactError(
                f"{root}: file {entry.path!r} does not match its SHA-256 in {MANIFEST_FILE} "
                "(edited or corrupted). Copy the artifact again or rebuild it.",
                path=str(root),
                file=entry.path,
            )
