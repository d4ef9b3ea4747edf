"""Reading the data files of a ``.padl`` directory from generated code.

Generated modules (the lineage module ``pipeline.py`` and a built artifact's stage module) load the
values saved with them through these helpers, with paths relative to the module's own file::

    VOCAB = load_json(__file__, "data/VOCAB.json")
    TABLE = load_npy(__file__, "data/TABLE.npy")

Torch, numpy (imported only when an ``.npy`` file is read) and the standard library only; no pickle:
``.npy`` files are read with ``allow_pickle=False`` and tensors come from safetensors.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from padl_runtime.errors import ArtifactError

__all__ = [
    "load_json",
    "load_json_pairs",
    "load_npy",
    "load_tensor",
    "load_weights",
    "resolve",
    "tie_parameters",
]

#: The key of the single tensor in a value's safetensors file.
TENSOR_KEY = "value"
#: Metadata key of ``weights.safetensors``: JSON ``{weight key: key of the same parameter}`` for
#: parameters shared between layers or tied inside one (restored before the weights are loaded).
TIES_KEY = "padl_ties"


def resolve(module_file: str | os.PathLike[str], relative: str) -> Path:
    """``relative`` (POSIX separators) next to ``module_file``."""
    return Path(module_file).resolve().parent.joinpath(*relative.split("/"))


def _missing(path: Path) -> ArtifactError:
    return ArtifactError(
        f"Data file {path} is missing: the artifact is incomplete. Copy it again or re-save it.",
        path=str(path.parent),
        file=path.name,
    )


def load_json(module_file: str | os.PathLike[str], relative: str) -> Any:
    """A JSON value (dict, list, str, number) saved beside the module."""
    path = resolve(module_file, relative)
    if not path.is_file():
        raise _missing(path)
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def load_json_pairs(module_file: str | os.PathLike[str], relative: str) -> dict[Any, Any]:
    """A dict with keys JSON cannot use as object keys (ints, floats, ...), stored as ``[[k, v], ...]``."""
    return {k: v for k, v in load_json(module_file, relative)}


def load_npy(module_file: str | os.PathLike[str], relative: str) -> Any:
    """A numpy array saved with ``np.save`` (never with pickled objects)."""
    import numpy as np  # only artifacts that hold arrays need numpy

    path = resolve(module_file, relative)
    if not path.is_file():
        raise _missing(path)
    return np.load(path, allow_pickle=False)


def load_tensor(module_file: str | os.PathLike[str], relative: str) -> torch.Tensor:
    """A tensor saved in a safetensors file under the key ``"value"``."""
    from safetensors.torch import load_file

    path = resolve(module_file, relative)
    if not path.is_file():
        raise _missing(path)
    return load_file(str(path))[TENSOR_KEY]


def load_weights(
    module_file: str | os.PathLike[str], relative: str, layers: Sequence[torch.nn.Module]
) -> None:
    """Load ``weights.safetensors`` (keys ``"<layer index>.<state_dict key>"``) into ``layers``.

    Parameters stay the layers' own ``nn.Parameter`` objects (so tied weights stay tied); those
    the file records as shared (``TIES_KEY`` metadata) are tied again first. A stored tensor with
    another dtype than the rebuilt layer's converts that parameter first.
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = resolve(module_file, relative)
    if not path.is_file():
        raise _missing(path)
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        ties = json.loads(metadata.get(TIES_KEY, "{}"))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(
            f"Cannot read the weights in {path}: {exc}. The file is damaged; re-save the pipeline.",
            path=str(path.parent),
            file=path.name,
        ) from exc
    tie_parameters(ties, layers, where=str(path))
    load_state_dicts(tensors, layers, where=str(path))


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
