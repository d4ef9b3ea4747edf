from __future__ import annotations

import dataclasses

import pytest

from padlc import IfInfer, batch, same, transform, unbatch
from padlc.ir import format_ir, iter_calls, resolve_mode, trace, trace_stages
from padlc.ir import nodes as ir


def double(x):
    return x * 2


def test_nodes_are_frozen_and_carry_the_source_line() -> None:
    t = transform(double)
    node = trace(t)
    assert isinstance(node, ir.Call) and node.kind == "function"
    assert node.location == t._pd_location
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.label = "x"  # type: ignore[misc]


def test_stages_follow_the_language_split() -> None:
    p = transform(double) >> batch >> (same.sum(-1) + same.mean(-1)) >> unbatch >> same[0]
    stages = trace_stages(p)
    assert isinstance(stages.forward, ir.Rollout) and stages.forward.fields == ("out_0", "out_1")
    assert stages.has_batch and stages.has_unbatch
    assert [c.label for c in iter_calls(stages.preprocess)] == ["double"]


def test_mode_switches_resolve_for_infer() -> None:
    node = resolve_mode(trace(IfInfer(transform(double), same.neg())), "infer")
    assert isinstance(node, ir.Call) and node.label == "double"
    node = resolve_mode(trace(IfInfer(transform(double), same.neg())), "eval")
    assert isinstance(node, ir.Attr)


def test_printer_shows_kinds_and_locations() -> None:
    text = format_ir(trace(transform(double) >> batch))
    assert text.splitlines()[0] == "Seq"
    assert "Call function `double`" in text and "test_ir.py:" in text
