"""The on-disk format of a ``.padl`` directory: ``manifest.json``.

This module is the single definition of the format. The compiler (``padlc``) writes manifests with
these classes and the runtime (and the C++ library) read them; see docs/format.md for the reference.

A manifest lists every file of the artifact with its SHA-256 and size, so loading can refuse a
directory that is incomplete, edited or truncated before executing any of its code. Since format
version 2 the manifest ends with its own ``digest`` (the SHA-256 of its bytes without that last
member), so a damaged manifest is refused too; every field is checked on reading, and a malformed
one is an :class:`~padl_runtime.ArtifactError` naming the field.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn

from padl_runtime.errors import ArtifactError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "READABLE_VERSIONS",
    "SIGNATURE_FILE",
    "BackendEntry",
    "CompiledOnly",
    "CppSection",
    "FileEntry",
    "ForwardSection",
    "Manifest",
    "ModeStages",
    "StageLayout",
    "check_relative_path",
    "encode_manifest",
    "file_entry",
    "parse_manifest",
    "read_manifest",
    "sha256_file",
    "verify_files",
]

FORMAT_NAME = "padl"
#: Bumped whenever a reader of the previous version could misread a new artifact. Version 2 adds
#: the manifest's own ``digest`` and requires ``stages.has_unbatch``. Version 3: per-mode stage
#: functions (``forward.modes``), forwards reading the lineage's weights (``BackendEntry.weights``),
#: built artifacts without a lineage (``module`` empty, ``without_lineage``, ``compiled_only``).
FORMAT_VERSION = 3
#: The versions this runtime reads (an artifact written by an earlier padlc keeps loading, and
#: means what it meant when it was written).
READABLE_VERSIONS = (1, 2, 3)
MANIFEST_FILE = "manifest.json"
#: An ed25519 signature of ``manifest.json`` (``padlc sign``); like the manifest, never listed in it.
SIGNATURE_FILE = "manifest.sig"
#: The files of the artifact directory that the manifest does not list.
UNLISTED_FILES = (MANIFEST_FILE, SIGNATURE_FILE)

ArtifactKind = Literal["saved", "built"]
BACKEND_NAMES = ("aoti", "export", "torchscript", "onnx", "eager")

# The last member of a version-2 manifest, as the writer puts it: the digest covers the bytes
# before it (with the object closed), so any change to the file shows.
_DIGEST_TAIL = re.compile(rb',\n  "digest": "sha256:([0-9a-f]{64})"\n}\n\Z')


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
    when nothing is left to run after it, and ``infer_apply`` removes the batch axis (without it,
    ``infer_apply`` returns the forward's output as it is, batch axis included, as in PADL).
    Required from version 2; ``None`` in a version-1 manifest written before it was recorded
    (those artifacts removed the batch axis in ``infer_apply``, and still do)."""

    preprocess: str
    forward: str
    postprocess: str
    has_batch: bool
    has_unbatch: bool | None = None


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
    #: a JSON file of this backend (one of ``files``), ``{"file": <a safetensors file of the
    #: artifact>, "tensors": {<name in the forward>: <key in that file>}}``: tensors the forward
    #: reads from that file (the lineage's weights) instead of holding its own copy; "" for none
    weights: str = ""


@dataclass(frozen=True, slots=True)
class ModeStages:
    """What one apply mode of a built artifact runs: the functions of the stage module for its
    preprocess and postprocess, or ``unavailable``, why the artifact cannot apply this mode (its
    forward was compiled for another mode's branches of an ``IfInMode`` switch)."""

    preprocess: str = "preprocess"
    postprocess: str = "postprocess"
    unavailable: str = ""
    #: a function of the stage module running this mode's forward per item (a pipeline without
    #: ``batch``, whose forward is generated Python); "" for the artifact's forward
    forward: str = ""


@dataclass(frozen=True, slots=True)
class CompiledOnly:
    """A transform of the forward stage whose source could not be captured: the compiled forward
    is its only form, so the artifact has no lineage and no ``eager`` forward. ``where`` is the
    file and line the pipeline wraps it at, ``reason`` why it could not be captured."""

    transform: str
    where: str = ""
    reason: str = ""


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
    #: ``"infer"`` / ``"eval"`` -> the stage functions that mode runs (absent before version 3,
    #: where both run ``preprocess`` and ``postprocess``)
    modes: dict[str, ModeStages] = field(default_factory=dict)

    def backend(self, name: str) -> BackendEntry | None:
        return next((b for b in self.backends if b.name == name), None)

    def mode(self, name: str) -> ModeStages:
        return self.modes.get(name) or ModeStages()


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
    #: why the artifact has no lineage (``module`` is then empty): a serving build (``--slim``),
    #: or forward transforms that exist only compiled (``compiled_only``)
    without_lineage: str = ""
    compiled_only: tuple[CompiledOnly, ...] = ()

    # -- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {"format": FORMAT_NAME, **data}

    def to_json(self) -> str:
        """The text of ``manifest.json``; from version 2 it ends with its ``digest``."""
        return encode_manifest(self.to_dict())

    def listed(self) -> frozenset[str]:
        """The paths of the files the manifest lists."""
        return frozenset(entry.path for entry in self.files)

    @classmethod
    def from_dict(cls, data: Any, *, path: str = "") -> Manifest:
        """Check every field of a parsed manifest and build it; a malformed field is an
        :class:`ArtifactError` naming it (``forward.backends[0].files``)."""
        where = f"{path}/{MANIFEST_FILE}" if path else MANIFEST_FILE
        if not isinstance(data, Mapping) or data.get("format") != FORMAT_NAME:
            raise ArtifactError(
                f'{where} is not a padl manifest (no "format": "padl" entry).',
                path=path,
                file=MANIFEST_FILE,
            )
        version = data.get("format_version")
        if type(version) is not int or version not in READABLE_VERSIONS:
            raise ArtifactError(
                f"{where} has format version {version!r}; this runtime reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}. Upgrade padl_runtime/padlc, or "
                "rebuild the artifact with the installed padlc.",
                path=path,
                file=MANIFEST_FILE,
            )
        from padl_runtime._manifest_fields import FieldReader  # it builds these classes

        return FieldReader(where, path, version).manifest(data)


def check_relative_path(path: str) -> str | None:
    """Why ``path`` cannot name a file of an artifact (``None``: it can): it must be relative,
    with POSIX separators, and have no ``..``, ``.`` or empty component."""
    from padl_runtime._manifest_fields import path_problem

    return path_problem(path)


def encode_manifest(data: Mapping[str, Any]) -> str:
    """The text of ``manifest.json`` for the fields ``data`` (a ``digest`` among them is
    replaced): indented JSON, ending from version 2 with ``"digest": "sha256:<hex>"``, the SHA-256
    of the text without that last member."""
    fields = {key: value for key, value in data.items() if key != "digest"}
    body = json.dumps(fields, indent=2, sort_keys=False) + "\n"
    version = fields.get("format_version")
    if type(version) is int and version < 2:
        return body
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    return body[: -len("\n}\n")] + f',\n  "digest": "sha256:{digest}"\n}}\n'


# -- reading ----------------------------------------------------------------------------------
def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def parse_manifest(raw: bytes, *, path: str = "") -> Manifest:
    """Parse and check the bytes of a ``manifest.json``: valid JSON (no repeated keys, no NaN), a
    known format version, the digest (version 2 on), and every field."""
    where = f"{path}/{MANIFEST_FILE}" if path else MANIFEST_FILE
    try:
        data = json.loads(
            raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ArtifactError(
            f"{where} is not valid JSON ({exc}). The artifact is damaged; copy it again, or "
            "rebuild or re-save it.",
            path=path,
            file=MANIFEST_FILE,
        ) from exc
    readable = isinstance(data, dict) and data.get("format") == FORMAT_NAME
    version = data.get("format_version") if readable else None
    if type(version) is int and version in READABLE_VERSIONS and version >= 2:
        _check_digest(raw, where, path)
    return Manifest.from_dict(data, path=path)


def _check_digest(raw: bytes, where: str, path: str) -> None:
    tail = _DIGEST_TAIL.search(raw)
    if tail is None:
        raise ArtifactError(
            f'{where} does not end with its "digest" (a version-2 manifest does). The manifest '
            "is damaged or was edited; copy the artifact again, or rebuild or re-save it.",
            path=path,
            file=MANIFEST_FILE,
        )
    body = raw[: tail.start()] + b"\n}\n"
    if hashlib.sha256(body).hexdigest() != tail.group(1).decode("ascii"):
        raise ArtifactError(
            f"{where} does not match its own digest: it was damaged or edited after it was "
            "written. Copy the artifact again, or rebuild or re-save it.",
            path=path,
            file=MANIFEST_FILE,
        )


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
    """Parse and check ``path/manifest.json`` without reading the other files."""
    from padl_runtime.artifact import Artifact

    return Artifact.open(path).manifest


def verify_files(path: str | os.PathLike[str], manifest: Manifest) -> None:
    """Check that every file listed in the manifest is present, inside the artifact, with the
    recorded size and hash (reads every file: loaders verify what they read as they read it)."""
    from padl_runtime.artifact import Artifact

    artifact = Artifact(Path(path), manifest, b"")
    for entry in manifest.files:
        artifact.read(entry.path, keep=False)
