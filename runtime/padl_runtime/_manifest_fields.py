"""Checking the fields of a parsed ``manifest.json`` as :class:`~padl_runtime.manifest.Manifest`
is built from them: a malformed field is an :class:`~padl_runtime.ArtifactError` naming it
(``forward.backends[0].files[0]``), never a ``KeyError`` or a silently different artifact."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any, NoReturn

from padl_runtime.errors import ArtifactError
from padl_runtime.manifest import (
    MANIFEST_FILE,
    UNLISTED_FILES,
    BackendEntry,
    CompiledOnly,
    CppSection,
    FileEntry,
    ForwardSection,
    Manifest,
    ModeStages,
    StageLayout,
)

__all__ = ["FieldReader", "path_problem"]

_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
#: how deeply a tree spec may nest (a deeper one is damage, not a pipeline's output)
_MAX_SPEC_DEPTH = 64


class FieldReader:
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
        problem = path_problem(value)
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


def path_problem(path: str) -> str | None:
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
