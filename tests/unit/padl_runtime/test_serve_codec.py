"""The serving JSON codec: items from JSON, outputs to JSON, Open Inference Protocol tensors."""

from __future__ import annotations

import json
import math
from collections import namedtuple

import numpy as np
import pytest
import torch

from padl_runtime.serve.codec import (
    DecodeError,
    EncodeError,
    decode_item,
    dumps,
    encode_output,
    items_from_tensors,
    tensors_from_outputs,
)


def test_b64_objects_decode_to_bytes_anywhere_in_an_item() -> None:
    assert decode_item({"image": {"b64": "aGk="}, "n": [1, {"b64": ""}]}) == {
        "image": b"hi",
        "n": [1, b""],
    }


def test_items_without_b64_are_returned_as_they_are() -> None:
    item = {"x": [1, 2], "y": "text"}
    assert decode_item(item) is item


def test_invalid_base64_names_where_it_is() -> None:
    with pytest.raises(DecodeError, match=r"inputs\[2\].image"):
        decode_item({"image": {"b64": "not base64!"}}, "inputs[2]")


def test_outputs_encode_tensors_as_lists_and_namedtuples_as_objects() -> None:
    Pair = namedtuple("Pair", "left right")
    output = {
        "scores": torch.tensor([[0.5, 1.0]]),
        "label": torch.tensor(3),
        "pair": Pair(1, "a"),
        "both": (torch.tensor([True]), np.array([1, 2])),
        "raw": b"\x00\x01",
        5: None,
    }
    assert encode_output(output) == {
        "scores": [[0.5, 1.0]],
        "label": 3,
        "pair": {"left": 1, "right": "a"},
        "both": [[True], [1, 2]],
        "raw": {"b64": "AAE="},
        "5": None,
    }


def test_an_output_without_json_form_is_an_error_naming_its_type() -> None:
    with pytest.raises(EncodeError, match=r"builtins\.object"):
        encode_output({"x": object()})


def test_non_finite_floats_are_written_as_strings() -> None:
    text = dumps(encode_output([math.nan, math.inf, -math.inf, 1.5]))
    assert json.loads(text) == ["NaN", "Infinity", "-Infinity", 1.5]


def test_one_tensor_input_gives_one_item_per_row() -> None:
    tensor = {"name": "x", "shape": [2, 2, 1], "datatype": "INT32", "data": [[1, 2], [3, 4]]}
    assert items_from_tensors([tensor]) == [[[1], [2]], [[3], [4]]]


def test_a_one_dimensional_input_gives_numbers_or_strings() -> None:
    assert items_from_tensors(
        [{"name": "s", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}]
    ) == ["a", "b"]
    assert items_from_tensors(
        [{"name": "v", "shape": [2], "datatype": "FP32", "data": [1, 2]}]
    ) == [1.0, 2.0]


def test_several_inputs_give_dict_items() -> None:
    inputs = [
        {"name": "ids", "shape": [2, 2], "datatype": "INT64", "data": [1, 2, 3, 4]},
        {"name": "text", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]},
    ]
    assert items_from_tensors(inputs) == [
        {"ids": [1, 2], "text": "a"},
        {"ids": [3, 4], "text": "b"},
    ]


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (
            {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3]},
            "holds 4 values, but data has 3",
        ),
        (
            {"name": "x", "shape": [2], "datatype": "FP99", "data": [1, 2]},
            "unknown datatype 'FP99'",
        ),
        ({"name": "x", "shape": [1], "datatype": "INT8", "data": [1.5]}, "must be integers"),
        ({"name": "x", "shape": [1], "datatype": "BYTES", "data": [1]}, "must be strings"),
        ({"name": "x", "shape": [], "datatype": "FP32", "data": []}, "non-empty list of sizes"),
        ({"name": "x", "datatype": "FP32", "data": []}, "no 'shape'"),
    ],
)
def test_a_bad_tensor_is_a_decode_error_naming_the_problem(tensor, message) -> None:
    with pytest.raises(DecodeError, match=message):
        items_from_tensors([tensor])


def test_inputs_of_different_item_counts_are_an_error() -> None:
    inputs = [
        {"name": "a", "shape": [2], "datatype": "FP32", "data": [1, 2]},
        {"name": "b", "shape": [1], "datatype": "FP32", "data": [1]},
    ]
    with pytest.raises(DecodeError, match="a: 2, b: 1"):
        items_from_tensors(inputs)


def test_dict_outputs_give_one_tensor_per_key_with_its_datatype() -> None:
    outputs = [
        {"label": 1, "p": torch.tensor([0.5, 0.5])},
        {"label": 2, "p": torch.tensor([1.0, 0.0])},
    ]
    assert tensors_from_outputs(outputs) == [
        {"name": "label", "datatype": "INT64", "shape": [2], "data": [1, 2]},
        {"name": "p", "datatype": "FP32", "shape": [2, 2], "data": [0.5, 0.5, 1.0, 0.0]},
    ]


def test_outputs_that_are_not_alike_travel_as_json_bytes() -> None:
    (tensor,) = tensors_from_outputs([[1, 2], [3]])
    assert tensor["datatype"] == "BYTES" and tensor["data"] == ["[1,2]", "[3]"]
    assert tensor["parameters"] == {"content_type": "application/json"}


def test_string_outputs_are_bytes() -> None:
    assert tensors_from_outputs(["a", "b"]) == [
        {"name": "output", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]}
    ]
