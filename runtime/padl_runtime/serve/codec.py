"""The JSON codec: raw items from JSON, outputs to JSON, and the Open Inference Protocol's tensors.

Plain functions on Python values, independent of any web framework (the HTTP server and the Ray
adapters both use them).

**Items** (what ``infer_apply`` takes) arrive as JSON values and are given to the pipeline as
Python values: objects as dicts, arrays as lists, numbers, strings, booleans, ``null``. An object
that is exactly ``{"b64": "<base64>"}`` is bytes (the convention of TF Serving and KServe's v1
protocol for binary data such as an encoded image).

**Outputs** are written as JSON: tensors and numpy arrays as nested lists (a 0-d tensor as a
number), tuples and lists as arrays, namedtuples as objects (``{"field": value}``), dicts as
objects (keys as strings), bytes as ``{"b64": "..."}``, and non-finite floats as the strings
``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (as the protobuf JSON mapping writes them: JSON has
no such numbers). Anything else is an :class:`EncodeError`.

**Open Inference Protocol tensors** (KServe v2, ``POST /v2/models/{name}/infer``): see
:func:`items_from_tensors` and :func:`tensors_from_outputs`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

__all__ = [
    "DATATYPES",
    "DecodeError",
    "EncodeError",
    "decode_item",
    "dumps",
    "encode_output",
    "items_from_tensors",
    "tensors_from_outputs",
]


class DecodeError(ValueError):
    """A request's JSON does not hold what it must; the message names the field."""


class EncodeError(TypeError):
    """An output cannot be written as JSON; the message names its type."""


# -- items -----------------------------------------------------------------------------------------
def _has_b64(value: Any) -> bool:
    if isinstance(value, dict):
        return (len(value) == 1 and "b64" in value) or any(_has_b64(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_b64(v) for v in value)
    return False


def _decode_b64(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and "b64" in value:
            text = value["b64"]
            if not isinstance(text, str):
                raise DecodeError(f'{where}: "b64" must be a base64 string.')
            try:
                return base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise DecodeError(f'{where}: "b64" is not valid base64 ({exc}).') from None
        return {k: _decode_b64(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_b64(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def decode_item(value: Any, where: str = "input") -> Any:
    """A raw item from its JSON value: ``{"b64": ...}`` objects become bytes, the rest is as is.

    >>> decode_item({"image": {"b64": "aGk="}, "size": 2})
    {'image': b'hi', 'size': 2}
    """
    return _decode_b64(value, where) if _has_b64(value) else value


# -- outputs ---------------------------------------------------------------------------------------
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def _finite(value: Any) -> Any:
    """``value`` with non-finite floats as strings (only called when there are some)."""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return _NON_FINITE.get(value, value)
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def encode_output(value: Any) -> Any:
    """A pipeline output as a JSON-ready value (see the module docstring for the mapping).

    >>> encode_output({"label": 3, "scores": torch.tensor([0.5, 0.25])})
    {'label': 3, 'scores': [0.5, 0.25]}
    """
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, Mapping):
        return {str(k): encode_output(v) for k, v in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return {f: encode_output(v) for f, v in zip(value._fields, value, strict=True)}
    if isinstance(value, list | tuple):
        return [encode_output(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return {"b64": base64.b64encode(value).decode("ascii")}
    if type(value).__module__ == "numpy":
        return value.tolist()  # an array or a numpy scalar
    raise EncodeError(
        f"The pipeline's output holds a {type(value).__module__}.{type(value).__qualname__}, "
        "which has no JSON form. Return tensors, numbers, strings, bytes, or lists, tuples and "
        "dicts of them from the postprocess."
    )


def dumps(value: Any) -> bytes:
    """Compact JSON bytes of an already encoded value; non-finite floats become strings."""
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    except ValueError:  # NaN or infinity somewhere
        text = json.dumps(_finite(value), separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


# -- the Open Inference Protocol's tensors ---------------------------------------------------------
#: Tensor datatypes of the protocol, with the torch dtype of each numeric one.
DATATYPES: dict[str, torch.dtype | None] = {
    "BOOL": torch.bool,
    "UINT8": torch.uint8,
    "UINT16": torch.uint16,
    "UINT32": torch.uint32,
    "UINT64": torch.uint64,
    "INT8": torch.int8,
    "INT16": torch.int16,
    "INT32": torch.int32,
    "INT64": torch.int64,
    "FP16": torch.float16,
    "FP32": torch.float32,
    "FP64": torch.float64,
    "BF16": torch.bfloat16,
    "BYTES": None,
}
_BY_DTYPE = {dtype: name for name, dtype in DATATYPES.items() if dtype is not None}


def _flat(data: Any) -> list[Any]:
    """The protocol allows ``data`` flat or nested (row-major); this is it flat."""
    if not isinstance(data, list):
        return [data]
    if not any(isinstance(v, list) for v in data):
        return data
    out: list[Any] = []
    for value in data:
        out.extend(_flat(value))
    return out


def _nest(values: list[Any], shape: Sequence[int]) -> Any:
    if len(shape) <= 1:
        return values
    step = len(values) // shape[0] if shape[0] else 0
    return [_nest(values[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def _check_value(value: Any, datatype: str, where: str) -> Any:
    if datatype == "BYTES":
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and set(value) == {"b64"}:
            return _decode_b64(value, where)
        raise DecodeError(f"{where}: BYTES data must be strings, got {json.dumps(value)[:40]}.")
    if datatype == "BOOL":
        if isinstance(value, bool):
            return value
        raise DecodeError(f"{where}: BOOL data must be true or false, got {value!r}.")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DecodeError(f"{where}: {datatype} data must be numbers, got {value!r}.")
    if datatype.startswith(("INT", "UINT")) and not float(value).is_integer():
        raise DecodeError(f"{where}: {datatype} data must be integers, got {value!r}.")
    return int(value) if datatype.startswith(("INT", "UINT")) else float(value)


def _tensor_rows(tensor: Any, index: int) -> tuple[str, list[Any]]:
    """``(name, one value per row)`` of one request tensor; the first axis is the batch axis."""
    where = f"inputs[{index}]"
    if not isinstance(tensor, dict):
        raise DecodeError(f"{where} must be an object with name, shape, datatype and data.")
    missing = [k for k in ("name", "shape", "datatype", "data") if k not in tensor]
    if missing:
        raise DecodeError(f"{where} has no {', '.join(map(repr, missing))}.")
    name, shape, datatype = tensor["name"], tensor["shape"], tensor["datatype"]
    where = f"input {name!r}"
    if not isinstance(name, str):
        raise DecodeError(f"inputs[{index}].name must be a string.")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise DecodeError(
            f"{where}: shape must be a non-empty list of sizes, the first the number of items "
            f"(got {json.dumps(shape)})."
        )
    if datatype not in DATATYPES:
        raise DecodeError(
            f"{where}: unknown datatype {datatype!r}; the protocol's are {', '.join(DATATYPES)}."
        )
    values = _flat(tensor["data"])
    expected = math.prod(shape)
    if len(values) != expected:
        raise DecodeError(
            f"{where}: shape {shape} holds {expected} values, but data has {len(values)}."
        )
    values = [_check_value(v, datatype, where) for v in values]
    return name, _nest(values, shape) if len(shape) > 1 else values


def items_from_tensors(inputs: Any) -> list[Any]:
    """The raw items of an inference request's ``inputs`` (a list of protocol tensors).

    The first axis of every tensor is the item axis. With one input, item ``i`` is row ``i`` of
    it: a number or a string for a tensor of shape ``[N]``, a nested list for ``[N, ...]`` (what
    ``{"inputs": [...]}`` of ``POST /predict`` would give). With several inputs, item ``i`` is a
    dict ``{input name: row i}``. BYTES data are strings (``{"b64": ...}`` for binary).

    >>> items_from_tensors([{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}])
    [[1.0, 2.0], [3.0, 4.0]]
    """
    if not isinstance(inputs, list) or not inputs:
        raise DecodeError("inputs must be a non-empty list of tensors.")
    named = [_tensor_rows(tensor, i) for i, tensor in enumerate(inputs)]
    names = [name for name, _ in named]
    if len(set(names)) != len(names):
        raise DecodeError(f"inputs has two tensors with one name ({', '.join(names)}).")
    counts = {name: len(rows) for name, rows in named}
    if len(set(counts.values())) != 1:
        raise DecodeError(
            "every input's first axis is the item axis, so all must have one size; got "
            + ", ".join(f"{n}: {c}" for n, c in counts.items())
            + "."
        )
    if len(named) == 1:
        return named[0][1]
    return [dict(zip(names, row, strict=True)) for row in zip(*(rows for _, rows in named))]


def _datatype(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return _BY_DTYPE.get(value.dtype, "FP32")
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FP64"
    if isinstance(value, str | bytes):
        return "BYTES"
    if type(value).__module__ == "numpy":
        return _datatype(torch.as_tensor(value))
    return ""


def _column(name: str, values: list[Any]) -> dict[str, Any]:
    """One protocol tensor from one value per item, or, when they are not alike tensors or
    scalars, BYTES holding each item's JSON text."""
    types = {_datatype(v) for v in values}
    shapes = {tuple(torch.as_tensor(v).shape) for v in values} if "BYTES" not in types else set()
    if len(types) == 1 and "" not in types and (len(shapes) <= 1 or types == {"BYTES"}):
        (datatype,) = types
        if datatype == "BYTES":
            data = [encode_output(v) if isinstance(v, bytes) else v for v in values]
            return {"name": name, "datatype": "BYTES", "shape": [len(values)], "data": data}
        (shape,) = shapes or {()}
        flat = _flat([encode_output(v) for v in values])
        return {"name": name, "datatype": datatype, "shape": [len(values), *shape], "data": flat}
    return {
        "name": name,
        "datatype": "BYTES",
        "shape": [len(values)],
        "data": [dumps(encode_output(v)).decode("utf-8") for v in values],
        "parameters": {"content_type": "application/json"},
    }


def tensors_from_outputs(outputs: Sequence[Any]) -> list[dict[str, Any]]:
    """The protocol's output tensors for the items' outputs (one per item, in order).

    Outputs that are dicts with the same keys give one tensor per key, named after it; any other
    output gives one tensor named ``"output"``. Values that are alike (tensors of one dtype and
    shape, or numbers, booleans, strings) are stacked along a new first axis with their datatype
    (a float32 tensor is FP32, a Python float FP64, a string BYTES); values that are not are sent
    as BYTES, each item's JSON text, with ``"parameters": {"content_type": "application/json"}``.
    """
    first = outputs[0] if outputs else None
    if (
        isinstance(first, Mapping)
        and first
        and all(isinstance(o, Mapping) and o.keys() == first.keys() for o in outputs)
    ):
        return [_column(str(key), [o[key] for o in outputs]) for key in first]
    return [_column("output", list(outputs))]
