from __future__ import annotations

import pytest

from padlc import same
from padlc.ir import nodes as ir
from padlc.ir import trace
from padlc.language.operations import CallValue, GetAttr, GetItem
from padlc.language.same import Same


def test_same_records_typed_operations() -> None:
    assert same.split(",")[0].strip()._pd_operations == (
        GetAttr("split"),
        CallValue((",",), {}),
        GetItem(0),
        GetAttr("strip"),
        CallValue(),
    )


def test_the_ir_keeps_the_operations_of_same() -> None:
    node = trace(same.shape[1:])
    assert isinstance(node, ir.Attr)
    assert node.operations == (GetAttr("shape"), GetItem(slice(1, None)))


def test_an_unknown_operation_kind_is_refused_not_called() -> None:
    # a tuple in the place of an operation (the old encoding) must not fall into the call branch
    with pytest.raises(TypeError, match="unknown `same` operation"):
        Same((("call", (), {}),))  # type: ignore[arg-type]


def test_operations_print_as_python_source() -> None:
    assert same[..., 0].float().div(2, rounding_mode="floor").pd_expression("x") == (
        "x[..., 0].float().div(2, rounding_mode='floor')"
    )
