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
from pathlib import Path, PurePosixPath
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
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
#: Nesting of a forward's tree spec beyond this is refused (a damaged spec, not a real forward).
_MAX_SPEC_DEPTH = 64


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
        return _Fields(where, path, version).manifest(data)


class _Fields:
    """Reads the fields of one manifest, naming the first malformed one in its error."""

    def __init__(self, where: str, path: str, version: int) -> None:
        self.where = where
        self.path = path
        self.version = version

    def fail(self, name: str, problem: str) -> NoReturn:
        raise ArtifactError(
            f"{self.where}: field {name!r} {problem}. The manifest is damaged or was edited; "
            "copy the artifact again, or rebuild or re-save it.",
            path=self.path,
            file=MANIFEST_FILE,
        )

    def section(self, data: Mapping[str, Any], key: str, name: str) -> Mapping[str, Any]:
        value = self.get(data, key, name)
        if not isinstance(value, Mapping):
            self.fail(name, f"must be an object, not {_kind(value)}")
        return value

    def get(self, data: Mapping[str, Any], key: str, name: str) -> Any:
        if key not in data:
            self.fail(name, "is missing")
        return data[key]

    def string(
        self, data: Mapping[str, Any], key: str, name: str, default: str | None = None
    ) -> str:
        if default is not None and key not in data:
            return default
        value = self.get(data, key, name)
        if not isinstance(value, str):
            self.fail(name, f"must be a string, not {_kind(value)}")
        return value

    def optional_string(self, data: Mapping[str, Any], key: str, name: str) -> str | None:
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            self.fail(name, f"must be a string or null, not {_kind(value)}")
        return value

    def boolean(
        self, data: Mapping[str, Any], key: str, name: str, default: bool | None = None
    ) -> bool:
        if default is not None and key not in data:
            return default
        value = self.get(data, key, name)
        if type(value) is not bool:
            self.fail(name, f"must be true or false, not {_kind(value)}")
        return value

    def integer(
        self,
        data: Mapping[str, Any],
        key: str,
        name: str,
        default: int | None = None,
        least: int = 0,
    ) -> int:
        if default is not None and key not in data:
            return default
        value = self.get(data, key, name)
        if type(value) is not int or value < least:
            self.fail(name, f"must be an integer of at least {least}, not {_shown(value)}")
        return value

    def number(self, data: Mapping[str, Any], key: str, name: str, default: float) -> float:
        value = data.get(key, default)
        if type(value) not in (int, float):
            self.fail(name, f"must be a number, not {_kind(value)}")
        return float(value)

    def strings(
        self, data: Mapping[str, Any], key: str, name: str, default: tuple[str, ...] | None = None
    ) -> tuple[str, ...]:
        if default is not None and key not in data:
            return default
        value = self.get(data, key, name)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(name, f"must be a list of strings, not {_kind(value)}")
        return tuple(value)

    def relative(self, value: str, name: str) -> str:
        problem = _path_problem(value)
        if problem is not None:
            self.fail(name, f"is not a path inside the artifact ({value!r}: {problem})")
        return value

    def listed(self, value: str, name: str, listed: frozenset[str]) -> str:
        self.relative(value, name)
        if value not in listed:
            self.fail(
                name,
                f"names {value!r}, which the manifest's files do not list (so it cannot be "
                "verified)",
            )
        return value

    # -- sections --------------------------------------------------------------------------------
    def manifest(self, data: Mapping[str, Any]) -> Manifest:
        files = self.files(self.get(data, "files", "files"))
        listed = frozenset(entry.path for entry in files)
        kind = self.string(data, "kind", "kind")
        if kind not in ("saved", "built"):
            self.fail("kind", f'must be "saved" or "built", not {kind!r}')
        forward = data.get("forward")
        if kind == "built" and forward is None:
            self.fail("forward", "is missing: a built artifact has a forward section")
        cpp = data.get("cpp")
        extra = data.get("extra", {})
        if not isinstance(extra, Mapping):
            self.fail("extra", f"must be an object, not {_kind(extra)}")
        return Manifest(
            format_version=self.version,
            padlc_version=self.string(data, "padlc_version", "padlc_version"),
            kind=kind,  # type: ignore[arg-type]
            pipeline=self.string(data, "pipeline", "pipeline"),
            module=self.module(data, listed),
            stages=self.stages(self.section(data, "stages", "stages")),
            files=files,
            python_version=self.string(data, "python_version", "python_version", ""),
            torch_version=self.string(data, "torch_version", "torch_version", ""),
            created=self.string(data, "created", "created", ""),
            forward=None if forward is None else self.forward(forward, listed),
            cpp=None if cpp is None else self.cpp(cpp, listed),
            extra=dict(extra),
            without_lineage=self.string(data, "without_lineage", "without_lineage", ""),
            compiled_only=self.compiled_only(data),
        )

    def module(self, data: Mapping[str, Any], listed: frozenset[str]) -> str:
        module = self.string(data, "module", "module")
        if self.version < 2:  # builds of version 1 recorded their source (MODULE:ATTR) here
            return module
        if not module and self.version >= 3 and data.get("kind") == "built":
            if not self.string(data, "without_lineage", "without_lineage", ""):
                self.fail("without_lineage", "must say why a built artifact has no lineage")
            return module  # a built artifact without a lineage (slim, compiled-only)
        return self.listed(module, "module", listed)

    def compiled_only(self, data: Mapping[str, Any]) -> tuple[CompiledOnly, ...]:
        value = data.get("compiled_only", [])
        if not isinstance(value, list):
            self.fail("compiled_only", f"must be a list, not {_kind(value)}")
        out = []
        for i, item in enumerate(value):
            name = f"compiled_only[{i}]"
            if not isinstance(item, Mapping):
                self.fail(name, f"must be an object, not {_kind(item)}")
            out.append(
                CompiledOnly(
                    transform=self.string(item, "transform", f"{name}.transform"),
                    where=self.string(item, "where", f"{name}.where", ""),
                    reason=self.string(item, "reason", f"{name}.reason", ""),
                )
            )
        return tuple(out)

    def modes(self, data: Mapping[str, Any], stage_module: str) -> dict[str, ModeStages]:
        value = data.get("modes", {})
        if not isinstance(value, Mapping):
            self.fail("forward.modes", f"must be an object, not {_kind(value)}")
        out = {}
        for mode, item in value.items():
            name = f"forward.modes.{mode}"
            if mode not in ("infer", "eval"):
                self.fail(name, 'is not a mode an artifact applies ("infer", "eval")')
            if not isinstance(item, Mapping):
                self.fail(name, f"must be an object, not {_kind(item)}")
            stages = ModeStages(
                preprocess=self.string(item, "preprocess", f"{name}.preprocess", "preprocess"),
                postprocess=self.string(item, "postprocess", f"{name}.postprocess", "postprocess"),
                unavailable=self.string(item, "unavailable", f"{name}.unavailable", ""),
                forward=self.string(item, "forward", f"{name}.forward", ""),
            )
            for key in ("preprocess", "postprocess", "forward"):
                function = getattr(stages, key)
                if function and not function.isidentifier():
                    self.fail(f"{name}.{key}", f"must name a function of {stage_module}")
            out[str(mode)] = stages
        return out

    def files(self, value: Any) -> tuple[FileEntry, ...]:
        if not isinstance(value, list):
            self.fail("files", f"must be a list, not {_kind(value)}")
        entries = []
        seen: set[str] = set()
        for i, item in enumerate(value):
            name = f"files[{i}]"
            if not isinstance(item, Mapping):
                self.fail(name, f"must be an object, not {_kind(item)}")
            path = self.relative(self.string(item, "path", f"{name}.path"), f"{name}.path")
            if path in UNLISTED_FILES:
                self.fail(f"{name}.path", f"lists {path}, which is never listed in itself")
            if path in seen:
                self.fail(f"{name}.path", f"lists {path!r} a second time")
            seen.add(path)
            sha256 = self.string(item, "sha256", f"{name}.sha256")
            if not _SHA256.match(sha256):
                self.fail(f"{name}.sha256", "must be 64 lowercase hexadecimal digits")
            size = self.integer(item, "size", f"{name}.size")
            entries.append(FileEntry(path=path, sha256=sha256, size=size))
        return tuple(entries)

    def stages(self, data: Mapping[str, Any]) -> StageLayout:
        # Keys this runtime does not know are left out, so that a later writer may add some.
        return StageLayout(
            preprocess=self.string(data, "preprocess", "stages.preprocess"),
            forward=self.string(data, "forward", "stages.forward"),
            postprocess=self.string(data, "postprocess", "stages.postprocess"),
            has_batch=self.boolean(data, "has_batch", "stages.has_batch"),
            has_unbatch=None
            if self.version < 2 and "has_unbatch" not in data
            else self.boolean(data, "has_unbatch", "stages.has_unbatch"),
        )

    def forward(self, data: Any, listed: frozenset[str]) -> ForwardSection:
        if not isinstance(data, Mapping):
            self.fail("forward", f"must be an object or null, not {_kind(data)}")
        raw_backends = self.get(data, "backends", "forward.backends")
        if not isinstance(raw_backends, list) or not raw_backends:
            self.fail("forward.backends", "must be a non-empty list")
        backends = tuple(
            self.backend(b, f"forward.backends[{i}]", listed) for i, b in enumerate(raw_backends)
        )
        stage_module = self.string(data, "stage_module", "forward.stage_module")
        if stage_module:
            self.listed(stage_module, "forward.stage_module", listed)
        graph_source = self.string(data, "graph_source", "forward.graph_source")
        if graph_source:
            self.listed(graph_source, "forward.graph_source", listed)
        inputs = self.signature(data, "inputs")
        outputs = self.signature(data, "outputs")
        max_batch = data.get("max_batch")
        if max_batch is not None:
            max_batch = self.integer(data, "max_batch", "forward.max_batch", least=1)
        input_spec = self.spec(data, "input_spec", len(inputs))
        output_spec = self.spec(data, "output_spec", len(outputs))
        return ForwardSection(
            backends=backends,
            stage_module=stage_module,
            graph_source=graph_source,
            inputs=inputs,
            outputs=outputs,
            batch_dim=self.integer(data, "batch_dim", "forward.batch_dim", 0),
            max_batch=max_batch,
            device=self.string(data, "device", "forward.device", "cpu"),
            moved_to_forward=self.strings(data, "moved_to_forward", "forward.moved_to_forward", ()),
            input_spec=input_spec,
            output_spec=output_spec,
            modes=self.modes(data, stage_module),
        )

    def backend(self, data: Any, name: str, listed: frozenset[str]) -> BackendEntry:
        if not isinstance(data, Mapping):
            self.fail(name, f"must be an object, not {_kind(data)}")
        files = self.strings(data, "files", f"{name}.files")
        if not files:
            self.fail(f"{name}.files", "is empty: a backend has at least one file")
        for i, file in enumerate(files):
            self.listed(file, f"{name}.files[{i}]", listed)
        max_abs_error = data.get("max_abs_error")
        if max_abs_error is not None:
            max_abs_error = self.number(data, "max_abs_error", f"{name}.max_abs_error", 0.0)
        return BackendEntry(
            name=self.string(data, "name", f"{name}.name"),
            files=files,
            device=self.string(data, "device", f"{name}.device"),
            arch=self.optional_string(data, "arch", f"{name}.arch"),
            torch_version=self.string(data, "torch_version", f"{name}.torch_version", ""),
            max_abs_error=max_abs_error,
            tolerance=self.number(data, "tolerance", f"{name}.tolerance", 0.0),
            build_seconds=self.number(data, "build_seconds", f"{name}.build_seconds", 0.0),
            note=self.string(data, "note", f"{name}.note", ""),
            weights=self.weights(data, name, files),
        )

    def weights(self, data: Mapping[str, Any], name: str, files: tuple[str, ...]) -> str:
        weights = self.string(data, "weights", f"{name}.weights", "")
        if weights and weights not in files:
            self.fail(f"{name}.weights", f"names {weights!r}, which is not one of its files")
        return weights

    def signature(self, data: Mapping[str, Any], key: str) -> tuple[dict[str, Any], ...]:
        value = data.get(key, [])
        name = f"forward.{key}"
        if not isinstance(value, list):
            self.fail(name, f"must be a list, not {_kind(value)}")
        out = []
        for i, item in enumerate(value):
            at = f"{name}[{i}]"
            if not isinstance(item, Mapping):
                self.fail(at, f"must be an object, not {_kind(item)}")
            self.string(item, "name", f"{at}.name")
            self.string(item, "dtype", f"{at}.dtype")
            shape = self.get(item, "shape", f"{at}.shape")
            if not isinstance(shape, list) or not all(
                d == "batch" or (type(d) is int and d >= 0) for d in shape
            ):
                self.fail(f"{at}.shape", 'must be a list of sizes (integers, or "batch")')
            out.append(dict(item))
        return tuple(out)

    def spec(self, data: Mapping[str, Any], key: str, tensors: int) -> dict[str, Any]:
        value = data.get(key, {})
        name = f"forward.{key}"
        if not isinstance(value, Mapping):
            self.fail(name, f"must be an object, not {_kind(value)}")
        if not value:
            return {}
        count = self.tree(value, name, 0)
        if tensors and count != tensors:
            self.fail(name, f"holds {count} tensors, but forward.{key[:-5]}s lists {tensors}")
        return dict(value)

    def tree(self, spec: Any, name: str, depth: int) -> int:
        """Check a tree spec (padl_runtime.treespec); the number of tensors it holds."""
        if depth > _MAX_SPEC_DEPTH:
            self.fail(name, f"nests deeper than {_MAX_SPEC_DEPTH} levels")
        if not isinstance(spec, Mapping):
            self.fail(name, f"must be an object, not {_kind(spec)}")
        kind = spec.get("t")
        if kind == "tensor":
            return 1
        if kind == "none":
            return 0
        if kind not in ("tuple", "list", "namedtuple", "dict"):
            self.fail(f"{name}.t", f"is not a kind of tree spec ({kind!r})")
        items = self.get(spec, "items", f"{name}.items")
        if not isinstance(items, list):
            self.fail(f"{name}.items", f"must be a list, not {_kind(items)}")
        labels = {"namedtuple": "fields", "dict": "keys"}.get(kind)
        if labels is not None:
            names = self.strings(spec, labels, f"{name}.{labels}")
            if len(names) != len(items) or len(set(names)) != len(names):
                self.fail(f"{name}.{labels}", "must name each item once")
            if kind == "namedtuple" and not all(
                n.isidentifier() and not n.startswith("_") for n in names
            ):
                self.fail(f"{name}.{labels}", "must be identifiers not starting with '_'")
        return sum(self.tree(s, f"{name}.items[{i}]", depth + 1) for i, s in enumerate(items))

    def cpp(self, data: Any, listed: frozenset[str]) -> CppSection:
        if not isinstance(data, Mapping):
            self.fail("cpp", f"must be an object or null, not {_kind(data)}")
        forward_file = self.optional_string(data, "forward_file", "cpp.forward_file")
        if forward_file is not None:
            self.listed(forward_file, "cpp.forward_file", listed)
        pipeline_file = self.optional_string(data, "pipeline_file", "cpp.pipeline_file")
        if pipeline_file is not None:
            self.listed(pipeline_file, "cpp.pipeline_file", listed)
        return CppSection(
            forward_file=forward_file,
            run_available=self.boolean(data, "run_available", "cpp.run_available"),
            pipeline_file=pipeline_file,
            reason=self.string(data, "reason", "cpp.reason", ""),
        )


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "an object"
    return names.get(type(value), f"a {type(value).__name__}")


def _shown(value: Any) -> str:
    return repr(value) if type(value) in (int, float, bool) else _kind(value)


def _path_problem(path: str) -> str | None:
    """Why ``path`` is not a plain relative POSIX path inside the artifact (``None``: it is)."""
    if not path:
        return "empty"
    if "\\" in path or "\x00" in path:
        return "a backslash or NUL character"
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        return "absolute"
    parts = PurePosixPath(path).parts
    if any(part in ("..", ".") for part in path.split("/")) or "" in path.split("/"):
        return "a '..', '.' or empty component"
    if not parts:
        return "empty"
    return None


def check_relative_path(path: str) -> str | None:
    """Why ``path`` cannot name a file of an artifact (``None``: it can): it must be relative,
    with POSIX separators, and have no ``..``, ``.`` or empty component."""
    return _path_problem(path)


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
