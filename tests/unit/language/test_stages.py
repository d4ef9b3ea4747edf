"""Splitting pipelines into preprocess / forward / postprocess."""

import pytest
import torch

from padlc import (
    Compose,
    Identity,
    IfTrain,
    Map,
    Parallel,
    Rollout,
    StageError,
    Try,
    batch,
    identity,
    transform,
    unbatch,
)

from .pipelines import plus_one, times_two


def test_stages_of_a_compose_split_at_the_markers():
    p = plus_one >> batch >> times_two >> times_two >> unbatch >> plus_one
    assert repr(p.pd_preprocess) == "plus_one >> batch"
    assert repr(p.pd_forward) == "times_two >> times_two"
    assert repr(p.pd_postprocess) == "unbatch >> plus_one"
    assert isinstance(p.pd_preprocess, Compose)


def test_pipeline_without_batch_is_all_forward():
    p = plus_one >> times_two
    assert isinstance(p.pd_preprocess, Identity)
    assert repr(p.pd_forward) == "plus_one >> times_two"
    assert isinstance(p.pd_postprocess, Identity)


def test_unbatch_without_batch_starts_the_postprocess():
    p = times_two >> unbatch
    assert repr(p.pd_forward) == "times_two"
    assert repr(p.pd_postprocess) == "unbatch"


def test_parallel_split_gives_parallel_preprocess():
    t = plus_one >> batch >> times_two >> unbatch >> plus_one
    p = t / t
    assert isinstance(p.pd_preprocess, Parallel)
    assert isinstance(p.pd_forward, Parallel)
    assert isinstance(p.pd_postprocess, Parallel)


def test_rollout_split_is_a_rollout_then_parallels():
    t = plus_one >> batch >> times_two >> unbatch >> plus_one
    p = t + t
    assert isinstance(p.pd_preprocess, Rollout)
    assert isinstance(p.pd_forward, Parallel)
    assert isinstance(p.pd_postprocess, Parallel)


def test_rollout_after_batch_stays_a_rollout_in_the_forward():
    p = plus_one >> batch >> (times_two + plus_one) >> unbatch
    assert isinstance(p.pd_forward, Rollout)


def test_map_split_is_a_map_in_every_stage():
    t = plus_one >> batch >> times_two >> unbatch >> plus_one
    p = ~t
    assert all(isinstance(s, Map) for s in p.pd_stages)


def test_branches_may_batch_at_different_points():
    # each path passes exactly one `batch`, the first before `plus_one`, the second after it
    p = identity + identity >> plus_one / batch >> batch / plus_one
    assert repr(p.pd_preprocess) == "identity + identity >> plus_one / batch >> batch / identity"
    assert repr(p.pd_forward) == "identity / plus_one"
    assert [int(v) for v in p.infer_apply(1)] == [2, 2]


def test_split_inside_mode_switch():
    p = IfTrain(plus_one >> batch >> times_two, times_two >> batch >> plus_one)
    assert repr(p.pd_preprocess) == "IfTrain(plus_one >> batch, else_=times_two >> batch)"
    assert repr(p.pd_forward) == "IfTrain(times_two, else_=plus_one)"


def test_two_batches_on_one_path_is_an_error():
    with pytest.raises(StageError, match="Two `batch`"):
        (plus_one >> batch >> batch).pd_forward  # noqa: B018


def test_a_stage_error_names_the_pipeline():
    with pytest.raises(
        StageError, match=r"In the pipeline `plus_one >> batch >> times_two >> batch`"
    ):
        (plus_one >> batch >> times_two >> batch).pd_forward  # noqa: B018


def test_two_unbatches_on_one_path_is_an_error():
    with pytest.raises(StageError, match="Two `unbatch`"):
        (times_two >> batch >> unbatch >> unbatch).pd_forward  # noqa: B018


def test_a_branch_batching_beside_one_that_does_not_is_an_error():
    with pytest.raises(StageError, match="some branches pass `batch`"):
        (plus_one + (times_two >> batch)).pd_forward  # noqa: B018


def test_combining_branches_in_different_stages_names_the_transform():
    combine = transform(lambda x, y: x + y)
    with pytest.raises(StageError, match="different stages"):
        (plus_one + (times_two >> batch) >> combine).pd_forward  # noqa: B018


def test_try_spanning_stages_is_an_error():
    with pytest.raises(StageError, match="Try must lie within one stage"):
        Try(plus_one >> batch, times_two, ZeroDivisionError).pd_forward  # noqa: B018


def test_stage_of_identity_pipeline_is_identity():
    assert identity.pd_preprocess is identity


def _branch(step):
    return transform(lambda x: torch.tensor([float(x)])) >> batch >> step >> unbatch


def test_stage_parts_keep_the_branch_names_as_output_fields():
    # PADL: "the forward's outputs" of a named branch carry its name (`_add_name_to_splits`).
    p = (_branch(times_two >> plus_one) - "a") + (_branch(plus_one) - "b")
    out = p.pd_forward.infer_apply((torch.tensor([1.0]), torch.tensor([1.0])))
    assert out._fields == ("a", "b")
    assert p.pd_postprocess.pd_keys == ("a", "b")


def test_eval_apply_outputs_have_the_field_names_of_infer_apply():
    p = (_branch(times_two) - "doubled") + _branch(plus_one)
    assert p.infer_apply(1)._fields == ("doubled", "out_1")
    assert [o._fields for o in p.eval_apply([1, 2])] == [("doubled", "out_1")] * 2


def test_a_named_branchs_part_in_a_stage_is_found_by_its_name():
    p = (_branch(times_two >> plus_one) - "a") + (_branch(plus_one) - "b")
    assert repr(p.pd_forward["a"]) == "a"
    assert p.pd_forward["a"].infer_apply(torch.tensor([1.0])).tolist() == [3.0]


def test_padls_marker_constructors_with_their_default_arguments_are_batch_and_unbatch():
    from padlc import Batchify, Unbatchify

    p = plus_one >> Batchify(dim=0) >> times_two >> Unbatchify(dim=0, cpu=True)
    assert p.infer_apply(1) == torch.tensor(4)


def test_marker_arguments_padlc_does_not_support_are_refused():
    from padlc import Batchify, Unbatchify

    with pytest.raises(ValueError, match="axis 0"):
        Batchify(dim=1)
    with pytest.raises(ValueError, match="CPU"):
        Unbatchify(cpu=False)
