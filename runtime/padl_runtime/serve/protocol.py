"""Request handling: request bodies to raw items, per-item results to response bodies.

Independent of the web framework: functions from bytes to :class:`PredictRequest` /
:class:`InferRequest` and from results to a :class:`Reply` (status, JSON body, headers). The HTTP
app calls them around its batcher; a Ray Serve deployment calls them around
``CompiledPipeline.apply_batch``::

    request = parse_predict(body)                       # RequestError: a 400 reply
    results = pipeline.apply_batch(request.items, return_exceptions=True)
    reply = predict_reply(request, results)             # 200, or 422 naming the failing items

Results are one per item: the item's output, or an :class:`~padl_runtime.ItemError`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import padl_runtime
from padl_runtime.failures import ItemError
from padl_runtime.manifest import Manifest
from padl_runtime.serve.codec import (
    DecodeError,
    EncodeError,
    decode_item,
    dumps,
    encode_output,
    items_from_tensors,
    tensors_from_outputs,
)

__all__ = [
    "InferRequest",
    "PredictRequest",
    "Reply",
    "RequestError",
    "error_reply",
    "infer_reply",
    "live_reply",
    "model_metadata_reply",
    "model_name",
    "parse_infer",
    "parse_predict",
    "predict_reply",
    "ready_reply",
    "server_metadata_reply",
    "unknown_model_reply",
]


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP response: status, JSON body (bytes) and extra headers."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


class RequestError(Exception):
    """A request that cannot be served as it is: ``status`` (400 for a bad body) and a message
    naming the problem. :meth:`reply` is the response to send."""

    def __init__(self, message: str, status: int = 400, headers: Mapping[str, str] = {}) -> None:
        super().__init__(message)
        self.status = status
        self.headers = tuple(headers.items())

    def reply(self) -> Reply:
        return error_reply(self.status, str(self), headers=self.headers)


def error_reply(
    status: int, message: str, headers: Sequence[tuple[str, str]] = (), **extra: Any
) -> Reply:
    """``{"error": message, ...extra}`` with ``status`` (the Open Inference Protocol's error
    form, which ``POST /predict`` shares)."""
    return Reply(status, dumps({"error": message, **extra}), tuple(headers))


def _json_object(body: bytes, example: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestError(f"The request body is not JSON ({exc}). Send {example}.") from None
    if not isinstance(value, dict):
        raise RequestError(
            f"The request body must be a JSON object, got {type(value).__name__}. Send {example}."
        )
    return value


# -- POST /predict ---------------------------------------------------------------------------------
_PREDICT_EXAMPLE = '{"input": item} or {"inputs": [item, ...]}'


@dataclass(frozen=True, slots=True)
class PredictRequest:
    """The raw items of a ``POST /predict`` body; ``single`` for ``{"input": item}``."""

    items: list[Any]
    single: bool


def parse_predict(body: bytes) -> PredictRequest:
    """``{"input": item}`` or ``{"inputs": [item, ...]}`` (items as ``infer_apply`` takes them,
    in JSON; see :mod:`padl_runtime.serve.codec`). :class:`RequestError` (400) names what is
    wrong.

    >>> parse_predict(b'{"inputs": [[1, 2], [3, 4]]}')
    PredictRequest(items=[[1, 2], [3, 4]], single=False)
    """
    value = _json_object(body, _PREDICT_EXAMPLE)
    if len(value) == 1:
        if "input" in value:
            try:
                return PredictRequest([decode_item(value["input"])], True)
            except DecodeError as exc:
                raise RequestError(str(exc)) from None
        items = value.get("inputs")
        if isinstance(items, list) and items:
            try:
                return PredictRequest(
                    [decode_item(v, f"inputs[{i}]") for i, v in enumerate(items)], False
                )
            except DecodeError as exc:
                raise RequestError(str(exc)) from None
        if "inputs" in value:
            raise RequestError(
                f'"inputs" must be a non-empty list of items, got {json.dumps(items)[:60]}. '
                f"Send {_PREDICT_EXAMPLE}."
            )
    keys = ", ".join(map(repr, value)) or "no key"
    raise RequestError(f"The request body has {keys}; send {_PREDICT_EXAMPLE}.")


def _item_errors(results: Sequence[Any]) -> list[ItemError]:
    return [r.at(i) for i, r in enumerate(results) if isinstance(r, ItemError)]


def _failed(errors: list[ItemError], count: int) -> Reply:
    described = "; ".join(
        f"input {e.index}: {e.describe()}" if count > 1 else e.describe() for e in errors
    )
    return error_reply(
        422,
        f"The pipeline failed on {'this input' if count == 1 else 'some inputs'}: {described}",
        errors=[
            {
                "index": e.index,
                "stage": e.stage,
                "step": e.step,
                "location": e.location,
                "type": e.error_type,
                "message": e.message,
            }
            for e in errors
        ],
    )


def predict_reply(request: PredictRequest, results: Sequence[Any]) -> Reply:
    """200 with ``{"output": ...}`` / ``{"outputs": [...]}``, in the order of the inputs; 422
    when an item failed (naming each failing input, its stage and step); 500 when an output has
    no JSON form."""
    if any(isinstance(r, ItemError) for r in results):
        return _failed(_item_errors(results), len(results))
    try:
        if request.single:
            return Reply(200, dumps({"output": encode_output(results[0])}))
        return Reply(200, dumps({"outputs": [encode_output(r) for r in results]}))
    except EncodeError as exc:
        return error_reply(500, str(exc))


# -- POST /v2/models/{name}/infer ------------------------------------------------------------------
_INFER_EXAMPLE = (
    '{"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32", "data": [...]}]}'
)


@dataclass(frozen=True, slots=True)
class InferRequest:
    """The raw items of an Open Inference Protocol request, with its ``id`` and the names of the
    outputs asked for (``None``: all)."""

    items: list[Any]
    id: str | None = None
    outputs: tuple[str, ...] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def parse_infer(body: bytes) -> InferRequest:
    """An inference request (see :func:`padl_runtime.serve.codec.items_from_tensors` for how
    its tensors map to raw items); :class:`RequestError` (400) names what is wrong."""
    value = _json_object(body, _INFER_EXAMPLE)
    if "inputs" not in value:
        raise RequestError(f'The request has no "inputs". Send {_INFER_EXAMPLE}.')
    try:
        items = items_from_tensors(value["inputs"])
    except DecodeError as exc:
        raise RequestError(f"{exc} Send {_INFER_EXAMPLE}.") from None
    if not items:
        raise RequestError("The request's tensors hold no item (their first axis is 0).")
    request_id = value.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError('"id" must be a string.')
    outputs = value.get("outputs")
    names: tuple[str, ...] | None = None
    if outputs is not None:
        if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
        ):
            raise RequestError('"outputs" must be a list of {"name": ...} objects.')
        names = tuple(o["name"] for o in outputs)
    parameters = value.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise RequestError('"parameters" must be an object.')
    return InferRequest(items, request_id, names, parameters)


def infer_reply(model: str, request: InferRequest, results: Sequence[Any]) -> Reply:
    """200 with ``{"model_name", "id", "outputs": [tensors]}`` (see
    :func:`padl_runtime.serve.codec.tensors_from_outputs`); 422 when an item failed, 400 when
    an output asked for does not exist."""
    if any(isinstance(r, ItemError) for r in results):
        return _failed(_item_errors(results), len(results))
    try:
        tensors = tensors_from_outputs(results)
    except EncodeError as exc:
        return error_reply(500, str(exc))
    if request.outputs is not None:
        by_name = {t["name"]: t for t in tensors}
        unknown = [n for n in request.outputs if n not in by_name]
        if unknown:
            return error_reply(
                400,
                f"The model has no output {', '.join(map(repr, unknown))}; its outputs are "
                f"{', '.join(map(repr, by_name))}.",
            )
        tensors = [by_name[n] for n in request.outputs]
    body: dict[str, Any] = {"model_name": model, "outputs": tensors}
    if request.id is not None:
        body["id"] = request.id
    return Reply(200, dumps(body))


# -- the Open Inference Protocol's other endpoints -------------------------------------------------
def model_name(root: str | os.PathLike[str]) -> str:
    """An artifact's name in the Open Inference Protocol's paths: its directory's name without
    ``.padl``."""
    return Path(root).name.removesuffix(".padl") or "model"


def live_reply() -> Reply:
    """``GET /v2/health/live``."""
    return Reply(200, dumps({"live": True}))


def ready_reply(ready: bool) -> Reply:
    """``GET /v2/health/ready`` and ``GET /v2/models/{name}/ready``: 503 when not ready."""
    return Reply(200 if ready else 503, dumps({"ready": ready}))


def server_metadata_reply() -> Reply:
    """``GET /v2``."""
    body = {"name": "padl-runtime", "version": padl_runtime.__version__, "extensions": []}
    return Reply(200, dumps(body))


def unknown_model_reply(name: str, served: str) -> Reply:
    """404 for a model name that is not the one served."""
    return error_reply(404, f"No model {name!r} here; this server serves {served!r}.")


def model_metadata_reply(name: str, manifest: Manifest, platform: str, max_batch: int) -> Reply:
    """``GET /v2/models/{name}``: the Open Inference Protocol's model metadata.

    The raw item's type is not recorded in the artifact, so no input tensors are listed: any
    tensor or BYTES input is accepted and mapped to raw items as
    :func:`padl_runtime.serve.codec.items_from_tensors` says. The forward's own inputs and outputs
    (after the preprocess) are in the parameters."""
    forward = manifest.forward
    body = {
        "name": name,
        "versions": [],
        "platform": platform,
        "inputs": [],
        "outputs": [],
        "parameters": {
            "pipeline": manifest.pipeline,
            "stages": {
                "preprocess": manifest.stages.preprocess,
                "forward": manifest.stages.forward,
                "postprocess": manifest.stages.postprocess,
            },
            "forward_inputs": list(forward.inputs) if forward is not None else [],
            "forward_outputs": list(forward.outputs) if forward is not None else [],
            "max_batch": max_batch,
            "item_mapping": (
                "item i is row i of the single input tensor (a nested list, a number or a "
                "string), or {input name: row i} for several inputs; outputs are one tensor per "
                "key of dict outputs, else one tensor named 'output'"
            ),
        },
    }
    return Reply(200, dumps(body))
