"""Refusing a ``torch.export`` archive (``.pt2``) that would run code when loaded.

``torch.export.load`` unpickles some payloads with ``weights_only=False``: a weight or constant
marked ``use_pickle`` (tensor subclasses), custom and opaque objects, sample inputs that the
restricted unpickler refuses (it falls back to the full one), and the files of older archive
formats. An archive may also hold an AOTInductor package (native code), which it loads too.
padlc never writes any of those for the export backend, so such an archive is refused before
torch reads it: the forward path runs no pickle and no native code.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import torch

from padl_runtime.artifact import Artifact
from padl_runtime.errors import ArtifactError

__all__ = ["check_no_code"]

#: Payload files whose names say they are pickles (custom and opaque objects).
_PICKLED_PREFIXES = ("custom_obj_", "opaque_obj_")
#: Directories of the archive that hold native code or formats the export backend never writes.
_FOREIGN_DIRS = ("data/aotinductor/", "data/executorch/", "data/mtia/", "data/xl_weights/")


def check_no_code(data: bytes, artifact: Artifact, file: str) -> None:
    """An :class:`ArtifactError` unless the ``.pt2`` archive ``data`` loads without unpickling
    anything and without native code."""

    def refuse(problem: str) -> ArtifactError:
        return ArtifactError(
            f"{artifact.root}: {file} {problem}. torch.export.load would run it as code, so "
            "padl_runtime does not load it: an export forward holds tensors and a graph only. "
            "Rebuild the artifact with padlc build.",
            path=str(artifact.root),
            file=file,
        )

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise refuse(f"is not a readable .pt2 archive ({exc})") from exc
    roots = {name.split("/", 1)[0] for name in names}
    if len(roots) != 1 or not all("/" in name for name in names):
        raise refuse("is not a .pt2 archive (its files are not under one directory)")
    (root,) = roots
    inner = [name[len(root) + 1 :] for name in names]
    if "archive_format" not in inner or "archive_version" not in inner:
        raise refuse("is in an older archive format (read with pickle)")
    for name in inner:
        if name.startswith(_FOREIGN_DIRS):
            raise refuse(f"holds {name} (native code or a format the export backend never writes)")
        if name.startswith(("data/weights/", "data/constants/")) and name.endswith(".pt"):
            raise refuse(f"holds {name}, a pickled state dict of an older format")
        if name.startswith("serialized_") or name == "version":
            raise refuse(f"holds {name}, a file of an older format read with pickle")
    try:
        for name in inner:
            if name.endswith("_config.json") and name.startswith(
                ("data/weights/", "data/constants/")
            ):
                _check_config(json.loads(archive.read(f"{root}/{name}")), name, refuse)
            if name.startswith("data/sample_inputs/"):
                # torch reads these with weights_only=True and, if that fails, with pickle
                torch.load(io.BytesIO(archive.read(f"{root}/{name}")), weights_only=True)
    except ArtifactError:
        raise
    except Exception as exc:
        raise refuse(
            f"has a payload the restricted reader refuses ({type(exc).__name__}: {exc})"
        ) from exc


def _check_config(config: Any, name: str, refuse: Any) -> None:
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise refuse(f"has a malformed {name}")
    for key, payload in entries.items():
        if not isinstance(payload, dict):
            raise refuse(f"has a malformed entry {key!r} in {name}")
        if payload.get("use_pickle") is not False:
            raise refuse(f"marks {key!r} in {name} as pickled (use_pickle)")
        path_name = str(payload.get("path_name", ""))
        if path_name.startswith(_PICKLED_PREFIXES):
            raise refuse(f"stores {key!r} in {name} as a pickled object ({path_name})")
