"""Compiled forwards that read the lineage's weights instead of holding a copy.

A built artifact keeps its lineage (``pipeline.py`` + ``weights.safetensors``, what ``padlc.load``
trains from) beside the compiled forward. The ``export`` and ``onnx`` backends store every tensor
of the forward that is byte-identical to one of that file (same dtype, shape and bytes) as a
reference to it: the forward's file keeps the graph, and a map file
(``forward/forward.pt2.weights.json``: ``{"file": "weights.safetensors", "tensors": {<name in the
forward>: <key in the file>}}``, the backend entry's ``weights``) tells the runtime which tensors to
read from the weights file. Tensors the compiler changed (a folded constant) stay in the forward.

Matching is by content, so a reference is never wrong; the build verifies the artifact as usual.
"""

from __future__ import annotations

import hashlib
import json
import mmap
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["StoredTensor", "WeightIndex", "write_map"]

#: torch dtype -> safetensors' name for it
_DTYPES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float64: "F64",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


@dataclass(frozen=True, slots=True)
class StoredTensor:
    """A tensor of the weights file: its key, and where its bytes are (from the file's start)."""

    key: str
    offset: int
    length: int


def _digest(data: object) -> bytes:
    return hashlib.blake2b(data, digest_size=20).digest()  # type: ignore[arg-type]


class WeightIndex:
    """The tensors of the artifact's safetensors file ``relative`` (under ``root``), by content."""

    def __init__(self, root: Path, relative: str) -> None:
        self.relative = relative
        self._tensors: dict[tuple[str, tuple[int, ...], bytes], StoredTensor] = {}
        with (
            open(root / relative, "rb") as handle,
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data,
        ):
            size = int.from_bytes(data[:8], "little")
            header = json.loads(data[8 : 8 + size])
            base = 8 + size
            view = memoryview(data)
            try:
                for key, info in header.items():
                    if key == "__metadata__":
                        continue
                    start, end = info["data_offsets"]
                    if end == start:
                        continue
                    found = StoredTensor(key, base + start, end - start)
                    digest = _digest(view[base + start : base + end])
                    self._tensors.setdefault((info["dtype"], tuple(info["shape"]), digest), found)
            finally:
                view.release()

    def __len__(self) -> int:
        return len(self._tensors)

    def find(self, dtype: str, shape: tuple[int, ...], data: object) -> StoredTensor | None:
        """The stored tensor of safetensors dtype ``dtype``, ``shape`` and raw bytes ``data``."""
        return self._tensors.get((dtype, tuple(shape), _digest(data)))

    def find_tensor(self, tensor: torch.Tensor) -> StoredTensor | None:
        """The stored tensor equal to ``tensor`` (byte for byte, same dtype and shape)."""
        dtype = _DTYPES.get(tensor.dtype)
        if dtype is None or tensor.numel() == 0 or tensor.device.type == "meta":
            return None
        raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
        return self.find(dtype, tuple(tensor.shape), raw)


def write_map(root: Path, relative: str, index: WeightIndex, tensors: dict[str, str]) -> str:
    """Write the map file ``relative`` (names in the forward -> keys in the weights file)."""
    (root / relative).write_text(
        json.dumps({"file": index.relative, "tensors": tensors}, indent=1, sort_keys=True) + "\n",
        encoding="utf-8",
    )
    return relative
