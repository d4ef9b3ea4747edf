"""The index of the lineage's weights file that compiled forwards read their tensors from."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from padlc.lowering.weights import WeightIndex


def _index(tmp_path: Path, tensors: dict[str, torch.Tensor]) -> WeightIndex:
    save_file(tensors, str(tmp_path / "weights.safetensors"))
    return WeightIndex(tmp_path, "weights.safetensors")


def test_a_tensor_is_found_by_its_content_with_where_its_bytes_are(tmp_path: Path) -> None:
    weight = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    index = _index(tmp_path, {"0.weight": weight, "0.bias": torch.ones(2)})
    found = index.find_tensor(weight.clone())
    assert found is not None and found.key == "0.weight"
    data = (tmp_path / "weights.safetensors").read_bytes()
    assert data[found.offset : found.offset + found.length] == weight.numpy().tobytes()


def test_other_values_dtypes_or_shapes_are_not_found(tmp_path: Path) -> None:
    weight = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    index = _index(tmp_path, {"0.weight": weight})
    assert index.find_tensor(weight + 1) is None
    assert index.find_tensor(weight.double()) is None
    assert index.find_tensor(weight.reshape(3, 2)) is None


def test_a_non_contiguous_view_is_compared_by_its_values(tmp_path: Path) -> None:
    weight = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    index = _index(tmp_path, {"0.weight": weight.t().contiguous()})
    found = index.find_tensor(weight.t())
    assert found is not None and found.key == "0.weight"
