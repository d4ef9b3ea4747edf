"""Tensors a compiled forward reads from the artifact's weights file instead of holding a copy.

A backend entry's ``weights`` names a JSON map of the forward (``{"file": "weights.safetensors",
"tensors": {<name in the forward>: <key in the file>}}``, written by padlc): the forward file holds
the graph, the lineage's safetensors file the tensors. Both are listed in the manifest and read
through :class:`~padl_runtime.artifact.Artifact`: their verified bytes, read once.
"""

from __future__ import annotations

import json

import torch

from padl_runtime.artifact import Artifact
from padl_runtime.errors import ArtifactError

__all__ = ["shared_tensors"]


def shared_tensors(artifact: Artifact, weights_map: str) -> dict[str, torch.Tensor]:
    """The forward's names -> the tensors stored for them in the artifact's weights file."""
    from safetensors.torch import load as load_safetensors

    root = artifact.root
    try:
        spec = json.loads(artifact.text(weights_map, needed_by="the forward's weights map"))
        weights_file, names = str(spec["file"]), dict(spec["tensors"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(
            f"{root}: the weights map {weights_map} is malformed ({exc}). Rebuild the artifact.",
            path=str(root),
            file=weights_map,
        ) from exc
    data = artifact.read(weights_file, needed_by=f"the forward ({weights_map})", keep=False)
    stored = load_safetensors(data)
    missing = [key for key in names.values() if key not in stored]
    if missing:
        raise ArtifactError(
            f"{root}: {weights_file} has no tensor {missing[0]!r}, which the forward reads "
            f"({weights_map}). Rebuild the artifact.",
            path=str(root),
            file=weights_file,
        )
    return {name: stored[key] for name, key in names.items()}
