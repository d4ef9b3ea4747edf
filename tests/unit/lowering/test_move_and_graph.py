from __future__ import annotations

import pytest
import torch

from padlc import LoweringError, batch, same, transform, unbatch
from padlc.builder.move import batched_operations, move_from_post, move_to_forward
from padlc.ir import nodes as ir
from padlc.ir import trace, trace_stages
from padlc.lowering import build_graph


@pytest.mark.parametrize(
    ("step", "batched"),
    [
        (same.float(), "x.float()"),
        (same.div(255.0), "x.div(255.0)"),
        (same.permute(2, 0, 1), "x.permute(0, 3, 1, 2)"),
        (same.transpose(0, -1), "x.transpose(1, -1)"),
        (same.softmax(-1), "x.softmax(-1)"),
    ],
)
def test_batch_safe_same_steps_are_rewritten_for_the_batch_axis(step, batched) -> None:
    operations = batched_operations(trace(step))
    assert operations is not None
    assert ir.Attr(operations=operations).operations == operations
    from padlc.language.same import Same

    assert Same(operations).pd_expression("x") == batched


@pytest.mark.parametrize(
    "step", [same.sum(), same[0], same.squeeze(), same.T, same.sub(torch.ones(1))]
)
def test_unsafe_steps_stay_in_the_preprocess(step) -> None:
    assert batched_operations(trace(step)) is None


def test_a_function_before_batch_is_never_moved() -> None:
    p = (
        transform(lambda x: x)
        >> same.float()
        >> transform(torch.relu)
        >> batch
        >> same.neg()
        >> unbatch
    )
    stages = trace_stages(p)
    _, _, moved = move_to_forward(stages.preprocess, stages.forward)
    assert moved == ()


def test_leading_same_steps_of_the_postprocess_join_the_forward_batched() -> None:
    p = (
        transform(lambda x: x) >> batch >> same.neg()
        >> unbatch >> same.softmax(0) >> same.argmax(0) >> transform(lambda x: x) >> same.real
    )  # fmt: skip
    stages = trace_stages(p)
    forward, post, moved = move_from_post(stages.forward, stages.postprocess)
    assert moved == ("same.softmax(0)", "same.argmax(0)")
    assert isinstance(forward, ir.Seq)
    assert [s.operations[1] for s in forward.steps[1:]] == [ir.CallValue((1,))] * 2  # item axis + 1
    assert isinstance(post, ir.Seq)
    assert [type(s) for s in post.steps] == [ir.Unbatch, ir.Call, ir.Attr]


def test_a_postprocess_reduction_over_every_axis_stays() -> None:
    stages = trace_stages(transform(lambda x: x) >> batch >> same.neg() >> unbatch >> same.argmax())
    _, post, moved = move_from_post(stages.forward, stages.postprocess)
    assert moved == ()
    assert post == stages.postprocess


def test_graph_flattens_inputs_and_outputs_with_tree_specs() -> None:
    p = batch >> (same.sum(-1) + same.mean(-1)) >> unbatch
    stages = trace_stages(p)
    batch_value = {"a": torch.ones(2, 3)}
    forward = ir.Seq(steps=(trace(same["a"]), stages.forward))
    lowered = build_graph(forward, batch_value, label="f")
    assert lowered.input_spec == {"t": "dict", "keys": ["a"], "items": [{"t": "tensor"}]}
    assert lowered.output_spec["t"] == "namedtuple"
    assert [t.tolist() for t in lowered.expected] == [[3.0, 3.0], [1.0, 1.0]]


def test_non_tensor_forward_output_is_a_lowering_error() -> None:
    forward = trace(transform(lambda t: t.tolist()))
    with pytest.raises(LoweringError, match="non-tensor"):
        build_graph(forward, torch.ones(2, 2), label="f")
