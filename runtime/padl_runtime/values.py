"""Reading the data files of a ``.padl`` directory from generated code.

Generated modules (the lineage module ``pipeline.py`` and a built artifact's stage module) load the
values saved with them through these helpers, with paths relative to the module's own file::

    VOCAB = load_json(__file__, "data/VOCAB.json")
    TABLE = load_npy(__file__, "data/TABLE.npy")

Torch, numpy (imported only when an ``.npy`` file is read) and the standard library only; no pickle:
``.npy`` files are read with ``allow_pickle=False`` and tensors come from safetensors.

While an artifact's module runs under the runtime's loader (:func:`padl_runtime.artifact.reading`),
a data file inside the artifact is read through it: it must be listed in the manifest, and its
bytes are verified before they are decoded; a path leaving the artifact is refused.
"""

from __future__ import annotations

import io
import json
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from padl_runtime.artifact import Artifact, current
from padl_runtime.errors import ArtifactError

__all__ = [
    "load_json",
    "load_json_pairs",
    "load_npy",
    "load_tensor",
    "load_weights",
    "resolve",
    "tie_parameters",
    "verified",
]

#: The key of the single tensor in a value's safetensors file.
TENSOR_KEY = "value"
#: Metadata key of ``weights.safetensors``: JSON ``{weight key: key of the same parameter}`` for
#: parameters shared between layers or tied inside one (restored before the weights are loaded).
TIES_KEY = "padl_ties"


def resolve(module_file: str | os.PathLike[str], relative: str) -> Path:
    """``relative`` (POSIX separators) next to ``module_file``."""
    return Path(module_file).resolve().parent.joinpath(*relative.split("/"))


def verified(
    module_file: str | os.PathLike[str], relative: str, *, directory: bool = False
) -> Path:
    """The path to hand code that reads files itself (a tokenizer's ``from_pretrained``, a
    ``value`` loader, a ``post_load`` hook): while an artifact is loaded, a private copy of the
    listed, verified file or folder (:meth:`Artifact.private_copy`), so no unlisted or edited byte
    reaches that code; otherwise (a build's draft) the path itself."""
    path = resolve(module_file, relative)
    artifact = current()
    if not isinstance(artifact, Artifact):
        return path
    inside = _inside(artifact, path, module_file, relative)
    return artifact.private_copy(inside, needed_by=Path(module_file).name, directory=directory)


def _inside(
    artifact: Artifact, path: Path, module_file: str | os.PathLike[str], relative: str
) -> str:
    """``path``'s name inside the artifact being loaded; a path leaving it is refused."""
    inside = artifact.contains(path)
    if inside is None:
        raise ArtifactError(
            f"{module_file} reads {relative!r}, which lies outside the artifact "
            f"{artifact.root}: an artifact's code reads only its own files.",
            path=str(artifact.root),
            file=relative,
        )
    return inside


def _missing(path: Path) -> ArtifactError:
    return ArtifactError(
        f"Data file {path} is missing: the artifact is incomplete. Copy it again or re-save it.",
        path=str(path.parent),
        file=path.name,
    )


def _read(module_file: str | os.PathLike[str], relative: str) -> tuple[Path, bytes]:
    """The bytes of a data file: through the artifact being loaded when there is one (listed,
    inside it, verified), else from the disk."""
    path = resolve(module_file, relative)
    artifact = current()
    if artifact is not None:
        inside = _inside(artifact, path, module_file, relative)
        return path, artifact.read(inside, needed_by=Path(module_file).name)
    if not path.is_file():
        raise _missing(path)
    return path, path.read_bytes()


def load_json(module_file: str | os.PathLike[str], relative: str) -> Any:
    """A JSON value (dict, list, str, number) saved beside the module."""
    path, data = _read(module_file, relative)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ArtifactError(
            f"Data file {path} is not valid JSON ({exc}). Re-save the pipeline.",
            path=str(path.parent),
            file=path.name,
        ) from exc


def load_json_pairs(module_file: str | os.PathLike[str], relative: str) -> dict[Any, Any]:
    """A dict with keys JSON cannot use as object keys (ints, floats, ...), stored as ``[[k, v], ...]``."""
    return {k: v for k, v in load_json(module_file, relative)}


def load_npy(module_file: str | os.PathLike[str], relative: str) -> Any:
    """A numpy array saved with ``np.save`` (never with pickled objects)."""
    import numpy as np  # only artifacts that hold arrays need numpy

    path, data = _read(module_file, relative)
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise ArtifactError(
            f"Cannot read the array in {path}: {exc}. Re-save the pipeline.",
            path=str(path.parent),
            file=path.name,
        ) from exc


def load_tensor(module_file: str | os.PathLike[str], relative: str) -> torch.Tensor:
    """A tensor saved in a safetensors file under the key ``"value"``."""
    path, data = _read(module_file, relative)
    return _safetensors(path, data)[0][TENSOR_KEY]


def load_weights(
    module_file: str | os.PathLike[str], relative: str, layers: Sequence[torch.nn.Module]
) -> None:
    """Load ``weights.safetensors`` (keys ``"<layer index>.<state_dict key>"``) into ``layers``.

    Parameters stay the layers' own ``nn.Parameter`` objects (so tied weights stay tied); those
    the file records as shared (``TIES_KEY`` metadata) are tied again first. A stored tensor with
    another dtype than the rebuilt layer's converts that parameter first.
    """
    path, data = _read(module_file, relative)
    tensors, metadata = _safetensors(path, data)
    try:
        ties = json.loads(metadata.get(TIES_KEY, "{}"))
    except ValueError as exc:
        raise ArtifactError(
            f"Cannot read the weights in {path}: {exc}. The file is damaged; re-save the pipeline.",
            path=str(path.parent),
            file=path.name,
        ) from exc
    tie_parameters(ties, layers, where=str(path))
    load_state_dicts(tensors, layers, where=str(path))


def _safetensors(path: Path, data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and the metadata of a safetensors file's bytes."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        tensors = load(data)
        (size,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + size].decode("utf-8"))
        metadata = header.get("__metadata__") or {}
        if not isinstance(metadata, dict):
            raise ValueError("its metadata is not an object")
    except (SafetensorError, struct.error, UnicodeDecodeError, ValueError) as exc:
        raise ArtifactError(
            f"Cannot read the tensors in {path}: {exc}. The file is damaged; re-save the pipeline.",
            path=str(path.parent),
            file=path.name,
        ) from exc
    return tensors, metadata


def _split(key: str, layers: Sequence[torch.nn.Module], where: str) -> tuple[torch.nn.Module, str]:
    index, _, name = key.partition(".")
    if not index.isdigit() or int(index) >= len(layers):
        raise ArtifactError(
            f"{where}: weight {key!r} belongs to layer {index}, but the pipeline has "
            f"{len(layers)} layers. The weights do not match the code; re-save the pipeline.",
            file=os.path.basename(where),
        )
    return layers[int(index)], name


def tie_parameters(ties: dict[str, str], layers: Sequence[torch.nn.Module], *, where: str) -> None:
    """Make each weight ``key`` of ``ties`` the same ``nn.Parameter`` as the weight it maps to
    (keys ``"<layer index>.<parameter name>"``)."""
    for key, source in ties.items():
        owner, name = _split(key, layers, where)
        source_layer, source_name = _split(source, layers, where)
        try:
            parameter = source_layer.get_parameter(source_name)
            module_path, _, attribute = name.rpartition(".")
            module = owner.get_submodule(module_path) if module_path else owner
        except AttributeError as exc:
            raise ArtifactError(
                f"{where}: the tied weights {key!r} and {source!r} are not parameters of the "
                f"rebuilt layers ({exc}). The weights do not match the code; re-save the pipeline.",
                file=os.path.basename(where),
            ) from exc
        setattr(module, attribute, parameter)


def load_state_dicts(
    tensors: dict[str, torch.Tensor], layers: Sequence[torch.nn.Module], *, where: str
) -> None:
    """Split ``{"<i>.<key>": tensor}`` by layer index and load each part into ``layers[i]``."""
    by_layer: list[dict[str, torch.Tensor]] = [{} for _ in layers]
    for key, tensor in tensors.items():
        _split(key, layers, where)
        index, _, name = key.partition(".")
        by_layer[int(index)][name] = tensor
    for i, (layer, state) in enumerate(zip(layers, by_layer)):
        own = layer.state_dict(keep_vars=True)
        for name, tensor in state.items():
            mine = own.get(name)
            if isinstance(mine, torch.Tensor) and mine.dtype != tensor.dtype:
                mine.data = mine.data.to(tensor.dtype)
        try:
            layer.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ArtifactError(
                f"{where}: the weights of layer {i} ({type(layer).__name__}) do not fit the "
                f"rebuilt layer: {exc}",
                file=os.path.basename(where),
            ) from exc
