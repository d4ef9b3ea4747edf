"""``onnx``: ``torch.onnx.export(..., dynamo=True)`` with a dynamic batch axis; run by onnxruntime."""

from __future__ import annotations

import importlib.util
import logging
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from padlc.errors import LoweringError
from padlc.lowering.fastpath import fused_fastpaths
from padlc.lowering.graph import LoweredForward, blame, lowering_error
from padlc.lowering.registry import Lowered, LoweringContext, dynamic_batch, register
from padlc.lowering.weights import StoredTensor, WeightIndex, write_map

FILE = "forward/forward.onnx"
MAP_FILE = "forward/forward.onnx.weights.json"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class OnnxBackend:
    name = "onnx"
    needs_source = False

    def unavailable(self, device: str) -> str | None:
        # onnxruntime runs the artifact: the build verifies it, and serving needs it
        missing = [
            m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None
        ]
        if missing:
            return f"{' and '.join(missing)} not installed (pip install 'padlc[onnx]')"
        return None

    def lower(self, forward: LoweredForward, root: Path, context: LoweringContext) -> Lowered:
        (root / FILE).parent.mkdir(parents=True, exist_ok=True)
        names = [n.name for n in forward.module.graph.nodes if n.op == "placeholder"]
        # torch.onnx reports progress and skipped torchvision ops through logging and warnings;
        # the build reports its own outcome, so both are kept quiet for the duration.
        logger = logging.getLogger("torch.onnx")
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            # ONNX has no fused transformer operator; the encoders' padding still follows eager.
            with (
                warnings.catch_warnings(),
                torch.no_grad(),
                fused_fastpaths(forward.module, kernels=False),
            ):
                warnings.simplefilter("ignore")
                index = context.shared_weights()
                program = torch.onnx.export(
                    forward.module,
                    forward.example,
                    dynamo=True,
                    input_names=names,
                    dynamic_shapes=dynamic_batch(forward),
                    verbose=False,
                )
                if program is None:  # only the legacy (dynamo=False) exporter returns None
                    raise RuntimeError("torch.onnx.export returned no program")
                program.save(str(root / FILE), external_data=False)
        except Exception as exc:
            raise _export_error(forward, exc, self.name) from exc
        finally:
            logger.setLevel(level)
        shared = _share_weights(root / FILE, index) if index is not None else {}
        if not shared or index is None:
            return Lowered(files=(FILE,))
        weights = write_map(root, MAP_FILE, index, shared)
        return Lowered(files=(FILE, MAP_FILE), weights=weights)


#: ONNX element type -> safetensors dtype, for the types onnxruntime takes from numpy arrays
_ONNX_DTYPES = {
    1: "F32",  # FLOAT
    10: "F16",  # FLOAT16
    11: "F64",  # DOUBLE
    7: "I64",  # INT64
    6: "I32",  # INT32
    5: "I16",  # INT16
    3: "I8",  # INT8
    2: "U8",  # UINT8
    9: "BOOL",  # BOOL
}


def _share_weights(path: Path, index: WeightIndex) -> dict[str, str]:
    """Turn every initializer of the model at ``path`` found in the lineage's weights file into
    external data referring to it (ONNX's own mechanism: location, offset, length); the names
    replaced -> their keys in the file. The runtime supplies those tensors to onnxruntime.

    The exporter's optimiser stores a Linear's weight transposed (for ``MatMul``): such an
    initializer becomes a ``Transpose`` of the stored tensor, which onnxruntime folds back into
    the same constant when it loads the model."""
    import numpy as np
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    graph = model.graph
    shared: dict[str, str] = {}
    transposes = []
    for initializer in list(graph.initializer):
        dtype = _ONNX_DTYPES.get(initializer.data_type)
        if dtype is None or not initializer.raw_data:
            continue
        dims = tuple(initializer.dims)
        found = index.find(dtype, dims, initializer.raw_data)
        if found is not None:
            _refer(initializer, index, found)
            shared[initializer.name] = found.key
            continue
        if len(dims) != 2:
            continue
        values = np.frombuffer(
            initializer.raw_data, dtype=helper.tensor_dtype_to_np_dtype(initializer.data_type)
        ).reshape(dims)
        found = index.find(dtype, dims[::-1], np.ascontiguousarray(values.T))
        if found is None:
            continue
        stored = onnx.TensorProto(
            name=f"{initializer.name}__stored", data_type=initializer.data_type, dims=dims[::-1]
        )
        _refer(stored, index, found)
        graph.initializer.remove(initializer)
        graph.initializer.append(stored)
        transposes.append(
            helper.make_node("Transpose", [stored.name], [initializer.name], perm=[1, 0])
        )
        shared[stored.name] = found.key
    if transposes:
        nodes = [*transposes, *graph.node]
        del graph.node[:]
        graph.node.extend(nodes)
    if shared:
        onnx.save(model, str(path))
    return shared


def _refer(tensor: Any, index: WeightIndex, found: StoredTensor) -> None:
    """Make ``tensor`` (a TensorProto) external data: ``found``'s bytes in the weights file."""
    import onnx

    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    del tensor.external_data[:]
    for key, value in (
        ("location", f"../{index.relative}"),
        ("offset", str(found.offset)),
        ("length", str(found.length)),
    ):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value


def _export_error(forward: LoweredForward, exc: BaseException, backend: str) -> LoweringError:
    """The error naming the root cause: torch.onnx wraps it (a ``TorchExportError`` whose first
    line is only "Failed to export the model with torch.export. This is step 1/3 ... Next steps:",
    in terminal colours), so the message names the step and the error it wraps, without colours."""
    cause = _root_cause(exc)
    what = "cannot be exported to ONNX"
    if cause is not exc:
        step = _ANSI.sub("", str(exc)).strip().split(". ", 1)[0].rstrip(".")
        what += f" (torch.onnx: {step})"
    error = lowering_error(forward.label, blame(exc, forward.calls), cause, what, backend)
    return LoweringError(_ANSI.sub("", str(error)))


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception ``exc`` was raised from (or while handling)."""
    seen = {id(exc)}
    while True:
        inner = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        if inner is None or id(inner) in seen:
            return exc
        seen.add(id(inner))
        exc = inner


register(OnnxBackend())
