"""``value`` and ``param``: what they return, and the mistakes they refuse."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from padlc import param, value
from padlc.capture.markers import is_forced, param_options, plain, serializer_of


def _save(val, path):
    np.save(path, val)


def _load(path):
    return np.load(path)


@pytest.mark.parametrize("number", [5, 0.5, True, None, 2j])
def test_value_of_a_number_is_the_number_itself(number):
    # PADL saves any JSON value; a number is saved as its exact literal.
    assert value(number) is number


def test_value_of_a_list_is_an_equal_list_saved_as_a_data_file():
    labels = value(["neg", "pos"])
    assert labels == ["neg", "pos"] and isinstance(labels, list)
    assert is_forced(labels)


def test_value_with_a_serializer_behaves_like_the_value():
    table = value(np.arange(6).reshape(2, 3), (_save, _load, ".npy"))
    assert isinstance(table, np.ndarray)
    assert table[1].tolist() == [3, 4, 5]
    assert serializer_of(table).suffix == ".npy"  # type: ignore[union-attr]


def test_a_result_computed_from_a_serialized_array_is_not_serialized_itself():
    table = value(np.arange(3), (_save, _load, ".npy"))
    assert serializer_of(table * 2) is None
    assert type(plain(table)) is np.ndarray


def test_a_tensor_given_a_serializer_gives_plain_tensors_from_operations():
    weights = value(torch.ones(2), (torch.save, torch.load, ".pt"))
    assert serializer_of(weights) is not None
    assert type(weights + 1) is torch.Tensor


def test_an_object_given_a_serializer_keeps_its_class_and_state():
    class Vocabulary:
        def __init__(self, words):
            self.words = words

    vocabulary = value(Vocabulary(["a", "b"]), (_save, _load))
    assert isinstance(vocabulary, Vocabulary) and vocabulary.words == ["a", "b"]
    assert type(plain(vocabulary)) is Vocabulary


def test_a_serializer_that_is_not_save_load_and_suffix_is_refused():
    with pytest.raises(TypeError, match=r"\(save, load, suffix\)"):
        value([1, 2], (_save,))


def test_value_of_an_object_without_serializer_suggests_one():
    with pytest.raises(TypeError, match=r"value\(x, \(save, load, suffix\)\)"):
        value(object())


def test_param_takes_a_description_and_use_default_as_padl_did():
    x = param("x", 1, "add this much", use_default=False)
    assert x == 1
    assert param_options(x) == ("add this much", False)


def test_param_with_the_value_first_says_the_name_comes_first():
    with pytest.raises(TypeError, match="name first"):
        param(1, "x")  # type: ignore[arg-type]
