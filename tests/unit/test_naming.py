from __future__ import annotations

import pytest

from padlc.naming import Namespace, legal


@pytest.mark.parametrize(
    ("hint", "name"),
    [
        ("model", "model"),
        ("same.lower()", "same_lower"),
        ("<lambda>", "lambda_1"),  # `lambda` is a keyword
        ("features.0.1", "features_0_1"),
        ("0.weight", "_0_weight"),
        ("_make_shift", "_make_shift"),
        ("", "value"),
    ],
)
def test_hints_become_legal_unique_identifiers(hint: str, name: str) -> None:
    assert Namespace().create(hint) == name


def test_a_taken_name_gets_the_first_free_suffix() -> None:
    names = Namespace(["x"])
    assert [names.create("x"), names.create("x"), names.create("x_1")] == ["x_1", "x_2", "x_1_1"]


def test_builtins_are_reserved_only_when_asked_except_for_the_builtin_itself() -> None:
    assert Namespace().create("len") == "len"
    reserving = Namespace(builtins=True)
    assert reserving.create("tuple") == "tuple_1"
    assert reserving.create("len", len) == "len"


def test_a_namespace_remembers_the_object_each_name_names() -> None:
    names = Namespace()
    obj = object()
    name = names.create("thing", obj)
    assert names.name_of(obj) == name and names.object_of(name) is obj
    names.forget(obj)
    assert names.name_of(obj) is None and name in names


def test_legal_keeps_underscores_the_hint_has() -> None:
    assert legal("class_") == "class_" and legal("__x__") == "__x__"
