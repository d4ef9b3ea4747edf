"""Request handling: bodies to raw items, results to replies (independent of the web framework)."""

from __future__ import annotations

import json

import pytest

from padl_runtime.failures import ItemError
from padl_runtime.serve.protocol import (
    InferRequest,
    PredictRequest,
    RequestError,
    infer_reply,
    parse_infer,
    parse_predict,
    predict_reply,
)


def test_input_is_one_item_and_inputs_are_many() -> None:
    assert parse_predict(b'{"input": [1, 2]}') == PredictRequest([[1, 2]], True)
    assert parse_predict(b'{"inputs": ["a", "b"]}') == PredictRequest(["a", "b"], False)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff", "not JSON"),
        (b"", "not JSON"),
        (b'"text"', "must be a JSON object, got str"),
        (b'{"input": 1, "inputs": [1]}', "'input', 'inputs'"),
        (b"{}", "no key"),
        (b'{"inputs": {"a": 1}}', "non-empty list"),
    ],
)
def test_a_bad_predict_body_is_a_400_naming_the_problem(body, message) -> None:
    with pytest.raises(RequestError, match=message) as info:
        parse_predict(body)
    assert info.value.status == 400
    reply = info.value.reply()
    assert reply.status == 400 and message in json.loads(reply.body)["error"]


def test_predict_reply_keeps_the_request_form() -> None:
    assert json.loads(predict_reply(PredictRequest([1], True), [{"a": 1}]).body) == {
        "output": {"a": 1}
    }
    assert json.loads(predict_reply(PredictRequest([1, 2], False), [1, 2]).body) == {
        "outputs": [1, 2]
    }


def test_a_failed_item_makes_a_422_naming_the_input_stage_and_step() -> None:
    error = ItemError(
        0, "preprocess", "ValueError", "bad value", step="parse", location="stages.py:9"
    )
    reply = predict_reply(PredictRequest([1, 2], False), [5, error])
    assert reply.status == 422
    body = json.loads(reply.body)
    assert body["error"] == (
        "The pipeline failed on some inputs: input 1: the preprocess step parse (stages.py:9) "
        "raised ValueError: bad value"
    )
    assert body["errors"][0]["index"] == 1 and body["errors"][0]["step"] == "parse"


def test_an_output_without_json_form_is_a_500() -> None:
    reply = predict_reply(PredictRequest([1], True), [object()])
    assert reply.status == 500 and "object" in json.loads(reply.body)["error"]


def test_infer_request_keeps_id_and_requested_outputs() -> None:
    body = {"id": "7", "inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [2]}],
            "outputs": [{"name": "label"}]}  # fmt: skip
    assert parse_infer(json.dumps(body).encode()) == InferRequest([2.0], "7", ("label",), {})


def test_infer_request_without_inputs_is_a_400() -> None:
    with pytest.raises(RequestError, match='no "inputs"'):
        parse_infer(b'{"id": "1"}')


def test_infer_reply_for_an_unknown_output_is_a_400_listing_the_outputs() -> None:
    reply = infer_reply("m", InferRequest([1], outputs=("nope",)), [{"label": 1}])
    assert reply.status == 400 and "'label'" in json.loads(reply.body)["error"]


def test_infer_reply_names_the_model_and_the_request() -> None:
    body = json.loads(infer_reply("m", InferRequest([1], id="r"), [3]).body)
    assert body == {"model_name": "m", "id": "r", "outputs": [
        {"name": "output", "datatype": "INT64", "shape": [1], "data": [3]}]}  # fmt: skip


@pytest.mark.slow  # a fresh process
def test_codec_and_request_handling_need_no_web_framework() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for name in ('starlette', 'uvicorn', 'prometheus_client', 'fastapi'):\n"
        "    sys.modules[name] = None  # importing it now raises\n"
        "import padl_runtime.serve as serve\n"
        "from padl_runtime.serve import codec, protocol\n"
        "assert serve.parse_predict(b'{\"input\": 1}').items == [1]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
