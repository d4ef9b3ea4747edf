"""infer_apply, eval_apply, train_apply, modes, devices, errors."""

import contextlib
import pickle
import threading

import numpy as np
import pytest
import torch

from padlc import (
    IfEval,
    IfInfer,
    IfTrain,
    ModeError,
    batch,
    identity,
    same,
    transform,
    unbatch,
)

from .pipelines import Polynomial, plus_one, times_three, times_two


@pytest.fixture
def staged():
    return plus_one >> batch >> times_two - "n" >> times_two >> unbatch


def test_infer_apply_runs_one_item_through_all_stages(staged):
    assert staged.infer_apply(1) == torch.tensor(8)


def test_infer_apply_without_unbatch_keeps_the_batch_axis():
    # PADL removes the batch axis "before the postprocess stage": without one, the forward's
    # output comes back as it is.
    p = plus_one >> batch >> times_two
    out = p.infer_apply(torch.tensor([1.0, 2.0]))
    assert out.shape == (1, 2)
    assert out.tolist() == [[4.0, 6.0]]


def test_infer_apply_without_unbatch_returns_a_scalar_loss():
    # PADL's training pattern: `predict / batch >> loss`.
    predict = transform(lambda x: torch.tensor([float(x)])) >> batch >> same.mul(2)
    loss = transform(lambda prediction, target: ((prediction - target) ** 2).mean())
    train_model = predict / batch >> loss
    out = train_model.infer_apply((1, torch.tensor([3.0])))
    assert out.shape == ()
    assert out.item() == 1.0


def test_infer_apply_without_unbatch_returns_a_dict_as_the_forward_made_it():
    p = (
        transform(lambda x: torch.tensor([x, x + 1.0]))
        >> batch
        >> transform(lambda t: {"sum": t.sum(), "rows": t})
    )
    out = p.infer_apply(1.0)
    assert out["sum"].item() == 3.0
    assert out["rows"].shape == (1, 2)


def test_eval_apply_returns_one_output_per_item_with_a_postprocess(staged):
    assert [o.item() for o in staged.eval_apply([1, 1, 2])] == [8, 8, 12]


def test_eval_apply_returns_batches_without_a_postprocess():
    p = plus_one >> batch >> times_two
    outputs = list(p.eval_apply([1, 2, 3], batch_size=2))
    assert [o.tolist() for o in outputs] == [[4, 6], [8]]


def test_eval_apply_flatten_gives_items():
    p = plus_one >> batch >> times_two
    assert [o.item() for o in p.eval_apply([1, 2, 3], batch_size=2, flatten=True)] == [4, 6, 8]


def test_eval_apply_len_counts_items_or_batches(staged):
    assert len(staged.eval_apply(range(10), batch_size=4)) == 10
    assert len((plus_one >> batch >> times_two).eval_apply(range(10), batch_size=4)) == 3


def test_eval_apply_use_post_false_skips_the_postprocess():
    p = plus_one >> batch >> times_two >> unbatch >> transform(lambda x: x.item())
    outputs = list(p.eval_apply([1, 2], use_post=False))
    assert isinstance(outputs[0], torch.Tensor)


def test_train_apply_flatten(staged):
    assert [o.item() for o in staged.train_apply([1, 2, 1, 2], flatten=True, batch_size=2)] == [
        8,
        12,
        8,
        12,
    ]


@pytest.mark.parametrize(
    "inputs",
    [
        [1, 2, 3],
        (1, 2, 3),
        range(1, 4),
        torch.tensor([1, 2, 3]),
        np.array([1, 2, 3]),
        (i for i in [1, 2, 3]),
    ],
    ids=["list", "tuple", "range", "tensor", "numpy", "generator"],
)
def test_eval_apply_accepts_indexables_and_iterables(staged, inputs):
    assert [int(o) for o in staged.eval_apply(inputs)] == [8, 12, 16]


def test_eval_apply_with_workers_keeps_order(staged):
    assert [int(o) for o in staged.eval_apply(range(20), batch_size=3, num_workers=2)] == [
        4 * (i + 1) for i in range(20)
    ]


def test_collation_handles_dicts_strings_and_nested_structures():
    @transform
    def to_record(x):
        return {"value": torch.tensor([float(x)]), "text": str(x), "pair": (x, x * 2)}

    @transform
    def from_record(r):
        return (r["value"].item(), r["text"], int(r["pair"][1]))

    p = to_record >> batch >> transform(lambda r: r) >> unbatch >> from_record
    assert list(p.eval_apply([1, 2], batch_size=2)) == [(1.0, "1", 2), (2.0, "2", 4)]
    assert p.infer_apply(3) == (3.0, "3", 6)


def test_calling_a_staged_pipeline_directly_says_which_apply_method_to_use(staged):
    with pytest.raises(ModeError, match="infer_apply"):
        staged(1)


@pytest.mark.parametrize(
    ("switch", "infer", "eval_", "train"),
    [
        (IfTrain(times_two, plus_one), 9, [9, 12], [12, 18]),
        (IfEval(times_two), 6, [12, 18], [6, 9]),
        (IfInfer(times_two), 12, [6, 9], [6, 9]),
    ],
)
def test_mode_switches_follow_the_apply_method(switch, infer, eval_, train):
    p = plus_one >> switch >> batch >> times_three
    assert p.infer_apply(1).item() == infer
    assert [int(o) for o in p.eval_apply([1, 2], flatten=True)] == eval_
    assert [int(o) for o in p.train_apply([1, 2], flatten=True)] == train


def test_infer_apply_runs_without_gradients_and_layers_in_eval_mode():
    seen = {}

    @transform
    class Probe(torch.nn.Module):
        def forward(self, x):
            seen["training"] = self.training
            seen["grad"] = torch.is_grad_enabled()
            return x

    probe = Probe()
    probe.train()
    (batch >> probe).infer_apply(torch.zeros(1))
    assert seen == {"training": False, "grad": False}
    assert probe.training  # restored


def test_train_apply_enables_gradients_and_restores_layer_modes():
    poly = Polynomial(2, 3)
    poly.eval()
    p = transform(lambda x: torch.tensor(float(x))) >> batch >> poly
    outputs = list(p.train_apply([1, 2], batch_size=2))
    assert outputs[0].requires_grad
    assert not poly.training


def test_modes_of_concurrent_threads_do_not_interfere():
    seen: dict[str, set] = {"infer": set(), "train": set()}
    from padlc.language.context import current_mode

    record = transform(lambda x: x)

    codes = {"infer": 1, "eval": 2, "train": 3}
    names = {v: k for k, v in codes.items()}

    @transform
    def observe(x):
        return x * 0 + codes[current_mode()]

    p = record >> batch >> observe
    barrier = threading.Barrier(2)

    def run(mode):
        barrier.wait()
        for _ in range(200):
            if mode == "infer":
                seen["infer"].add(names[p.infer_apply(1).item()])
            else:
                for out in p.train_apply([1, 2], batch_size=2, flatten=True):
                    seen["train"].add(names[out.item()])

    threads = [threading.Thread(target=run, args=(m,)) for m in ("infer", "train")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"infer": {"infer"}, "train": {"train"}}


def test_pd_to_moves_layers_and_records_the_device():
    poly = Polynomial(2, 3)
    p = plus_one >> batch >> poly
    assert p.pd_to("cpu") is p
    assert p.pd_device == "cpu"
    assert p.pd_forward.pd_device == "cpu"


def test_a_pipeline_sharing_layers_follows_another_pipeline_s_pd_to():
    # the docs' pattern: the training pipeline reuses the inference pipeline's model
    model = transform(torch.nn.Linear)(2, 3)
    predict = batch >> model
    train = (batch >> model) / batch >> transform(torch.nn.functional.cross_entropy)
    train.pd_to("meta")
    try:
        assert predict.pd_device == "meta"
        seen = []
        model.register_forward_pre_hook(lambda layer, args: seen.append(args[0].device.type))
        with contextlib.suppress(NotImplementedError):  # a meta output has no data to bring back
            predict.infer_apply(torch.zeros(2))
        assert seen == ["meta"]
    finally:
        # `batch` is one object shared by every pipeline (meta layers cannot be moved back)
        for t in train.pd_iter_transforms():
            t.__dict__.pop("_pd_device", None)


def test_pd_parameters_feed_an_optimizer():
    poly = Polynomial(2, 3)
    p = transform(lambda x: torch.tensor(float(x))) >> batch >> poly
    optimizer = torch.optim.SGD(p.pd_parameters(), lr=0.1)
    before = poly.a.item()
    loss = next(iter(p.train_apply([2.0, 3.0], batch_size=2))).sum()
    loss.backward()
    optimizer.step()
    assert poly.a.item() != before


@transform
def fails_on_three(x):
    if x == 3:
        raise ValueError("three is not allowed")
    return x


def test_infer_error_keeps_its_type_and_names_the_transform():
    p = plus_one >> fails_on_three >> batch >> times_two
    with pytest.raises(ValueError, match="three is not allowed") as info:
        p.infer_apply(2)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "fails_on_three" in notes
    assert "position 1" in notes


def test_an_error_in_a_layer_names_it_as_the_pipeline_prints_it():
    layer = transform(torch.nn.Sequential)(torch.nn.Linear(2, 2), torch.nn.ReLU())
    p = batch >> layer
    with pytest.raises(RuntimeError) as info:
        p.infer_apply(torch.zeros(3))
    note = info.value.__notes__[-1]
    printed = repr(p).split(" >> ")[1]
    assert f"raised by transform `{printed}` at position 1" in note
    assert "\n" not in note


def test_eval_error_names_the_failing_item():
    p = fails_on_three >> batch >> times_two
    with pytest.raises(ValueError) as info:
        list(p.eval_apply([1, 2, 3, 4], batch_size=2))
    text = str(info.value) + "\n".join(getattr(info.value, "__notes__", []))
    assert "item 2" in text


def test_eval_error_in_a_worker_names_the_failing_item():
    p = fails_on_three >> batch >> times_two
    with pytest.raises(ValueError) as info:
        list(p.eval_apply([1, 2, 3, 4], batch_size=2, num_workers=2))
    text = str(info.value) + "\n".join(getattr(info.value, "__notes__", []))
    assert "item 2" in text


@pytest.mark.parametrize("kind", ["module-level function", "lambda"])
def test_an_error_in_a_worker_names_the_transform(kind):
    step = (
        fails_on_three
        if kind == "module-level function"
        else transform(lambda x: fails_on_three(x))
    )
    p = plus_one >> step >> batch >> times_two
    with pytest.raises(ValueError) as info:
        list(p.eval_apply([0, 1, 2, 3], batch_size=2, num_workers=1))
    note = next(n for n in info.value.__notes__ if n.startswith("padlc:"))
    assert f"raised by transform `{step._pd_short_repr()}`" in note
    assert "test_applying.py" in note  # where it was created


@transform
def fails_on_seven(x):
    if x == 7:
        raise ValueError("seven")
    return torch.tensor([float(x)])


@pytest.mark.parametrize("num_workers", [0, 2])
def test_an_error_in_a_shuffled_run_names_the_item_by_its_input_index(num_workers):
    p = fails_on_seven >> batch >> times_two
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError) as info:
        list(p.eval_apply(range(20), batch_size=4, num_workers=num_workers, shuffle=True,
                          generator=generator))  # fmt: skip
    assert "while preprocessing item 7" in info.value.__notes__


def test_train_apply_with_drop_last_gives_batchnorm_whole_batches_only():
    norm = transform(torch.nn.BatchNorm1d)(1)
    p = fails_on_seven >> batch >> norm
    batches = list(p.train_apply([1, 2, 3, 4, 5], batch_size=2, drop_last=True))
    assert [len(b) for b in batches] == [2, 2]


def test_progress_bar_does_not_change_outputs(staged, capsys):
    assert [int(o) for o in staged.eval_apply([1, 2], progress=True)] == [8, 12]


def test_shuffle_draws_a_permutation_of_the_inputs(staged):
    outputs = [int(o) for o in staged.eval_apply(list(range(50)), shuffle=True, batch_size=8)]
    assert sorted(outputs) == [4 * (i + 1) for i in range(50)]
    assert outputs != [4 * (i + 1) for i in range(50)]


def test_shuffle_of_a_generator_is_refused_with_a_fix():
    p = plus_one >> batch >> times_two
    with pytest.raises(TypeError, match="shuffle=True needs inputs with a length"):
        p.eval_apply((i for i in range(3)), shuffle=True)


def test_eval_error_in_a_single_step_stage_names_the_step():
    p = fails_on_three >> batch >> times_two
    with pytest.raises(ValueError) as info:
        list(p.eval_apply([1, 2, 3], batch_size=2, num_workers=2))
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "raised by transform `fails_on_three` at position 0" in notes


def test_eval_apply_with_post_workers_gives_the_same_outputs_in_order():
    p = plus_one >> batch >> times_two >> unbatch >> times_three
    outputs = p.eval_apply(range(40), batch_size=3, num_workers=2, post_workers=2)
    assert [int(o) for o in outputs] == [6 * (i + 1) for i in range(40)]


def test_eval_error_in_a_post_worker_names_the_failing_step():
    p = plus_one >> batch >> times_two >> unbatch >> fails_on_three
    with pytest.raises(ValueError) as info:
        list(p.eval_apply([0.5, 1.0, 1.5], batch_size=2, post_workers=1))
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "raised by transform `fails_on_three` at position 4" in notes


def test_train_apply_refuses_post_workers(staged):
    with pytest.raises(TypeError, match="post_workers is for eval_apply"):
        staged.train_apply([1, 2], post_workers=2)


def test_rollout_outputs_pickle_and_come_back_equal():
    output = (plus_one + times_two).infer_apply(3)
    back = pickle.loads(pickle.dumps(output))
    assert back == output and back._fields == output._fields


def test_workers_run_a_preprocess_with_a_rollout_as_without_workers():
    # The training pattern of the docs: (x >> batch >> model) / (y >> batch) >> loss; the
    # preprocess sends a namedtuple from each worker. timeout: fail, not hang, if a batch is lost.
    p = (plus_one + times_two) >> batch >> unbatch
    inline = list(p.eval_apply(range(6), batch_size=4))
    pooled = list(
        p.eval_apply(range(6), batch_size=4, num_workers=2, loader_options={"timeout": 60})
    )
    assert pooled == inline


def test_post_workers_return_rollout_outputs():
    p = plus_one >> batch >> times_two >> unbatch >> plus_one + times_three
    inline = list(p.eval_apply(range(5), batch_size=2))
    assert list(p.eval_apply(range(5), batch_size=2, post_workers=1)) == inline


@pytest.mark.slow  # a fresh process
def test_spawned_workers_run_decorated_functions_layers_and_same():
    # spawn (the default on macOS and Windows) pickles the preprocess: `@transform def` at module
    # level, a wrapped torch layer, `same` and a rollout must all go by pickle.
    layer = transform(torch.nn.Linear)(2, 1)
    p = (
        (plus_one + same.mul(2.0))
        >> transform(torch.stack)
        >> batch
        >> layer
        >> unbatch
        >> times_three
    )
    items = [torch.tensor(float(i)) for i in range(6)]
    inline = list(p.eval_apply(items, batch_size=4))
    spawned = p.eval_apply(
        items,
        batch_size=4,
        num_workers=1,
        multiprocessing_context="spawn",
        loader_options={"timeout": 120},
    )
    assert all(torch.equal(a, b) for a, b in zip(spawned, inline, strict=True))


def test_transforms_pickle_and_apply_the_same_after():
    layer = transform(torch.nn.Linear)(2, 1)
    p = plus_one >> (same.mul(2.0) + identity) >> transform(torch.stack) >> layer
    back = pickle.loads(pickle.dumps(p))
    x = torch.tensor([1.0, 2.0])
    assert torch.equal(back.infer_apply(x), p.infer_apply(x))


def test_forward_device_check_passes_when_the_layers_are_where_the_pipeline_applies():
    model = transform(torch.nn.Linear)(2, 2)
    p = transform(torch.tensor) >> batch >> model >> unbatch
    assert p.pd_forward_device_check() is True


def test_forward_device_check_names_a_layer_moved_with_its_own_to():
    # PADL's check: WrongDeviceError when a forward layer is not on pd_device.
    from padlc import WrongDeviceError

    model = transform(torch.nn.Linear)(2, 2)
    p = transform(torch.tensor) >> batch >> model >> unbatch
    model.to("meta")
    with pytest.raises(WrongDeviceError, match=r"Linear .* 'weight' on meta.*pd_to\('cpu'\)"):
        p.pd_forward_device_check()


def test_a_mode_switch_with_else_none_passes_the_value_through_as_in_padl():
    p = plus_one >> IfTrain(times_two, None) >> batch
    assert p.infer_apply(1).tolist() == [2]
    assert [int(o) for o in p.train_apply([1], flatten=True)] == [4]


def test_padls_training_pattern_yields_one_loss_per_batch_that_trains_the_layer():
    # PADL's docs: `train_model = predict / batch >> loss`, then `loss.backward()` per batch.
    torch.manual_seed(0)
    layer = transform(torch.nn.Linear)(1, 1)
    predict = transform(lambda x: torch.tensor([float(x)])) >> batch >> layer
    loss = transform(lambda prediction, target: ((prediction - target) ** 2).mean())
    train_model = predict / batch >> loss
    optimizer = torch.optim.SGD(train_model.pd_parameters(), lr=0.05)
    data = [(1, torch.tensor([2.0])), (2, torch.tensor([4.0]))]
    before = train_model.infer_apply(data[0]).item()
    for _ in range(20):
        for batch_loss in train_model.train_apply(data, batch_size=2):
            assert batch_loss.shape == ()
            optimizer.zero_grad()
            batch_loss.backward()
            optimizer.step()
    assert train_model.infer_apply(data[0]).item() < before / 10


# -- mistakes that name their fix --------------------------------------------------------------
@pytest.fixture
def digits():
    to_tensor = transform(lambda pixels: torch.tensor(pixels, dtype=torch.float32))
    return to_tensor >> batch >> transform(torch.nn.Linear)(4, 3) >> unbatch


def test_infer_apply_given_a_batch_warns_once_eval_apply_has_seen_items(digits):
    items = [[1.0, 2.0, 3.0, 4.0]] * 5
    list(digits.eval_apply(items, batch_size=2))
    with pytest.warns(UserWarning, match=r"looks like a batch of 5 items.*eval_apply\(items\)"):
        digits.infer_apply(items)


def test_infer_apply_of_one_item_after_eval_apply_does_not_warn(digits):
    items = [[1.0, 2.0, 3.0, 4.0]] * 5
    list(digits.eval_apply(items, batch_size=2))
    assert digits.infer_apply(items[0]).shape == (3,)


def test_eval_apply_given_one_item_says_it_was_taken_for_many(digits):
    with pytest.raises(ValueError, match=r"ONE item .* `eval_apply\(\[item\]\)`"):
        list(digits.eval_apply([1.0, 2.0, 3.0, 4.0]))


def test_a_layer_failing_without_batch_is_told_where_batch_goes():
    norm = transform(torch.nn.BatchNorm1d)(4)
    p = transform(lambda x: torch.tensor(x, dtype=torch.float32)) >> norm >> unbatch
    with pytest.raises(ValueError, match="expected 2D or 3D input") as info:
        p.infer_apply([1.0, 2.0, 3.0, 4.0])
    assert any("`unbatch` but no `batch`" in note for note in info.value.__notes__)


def test_batch_size_given_as_a_string_names_the_number_to_pass(staged):
    with pytest.raises(TypeError, match=r"batch_size must be an integer.*batch_size=32"):
        staged.eval_apply([1, 2], batch_size="32")


def test_a_misspelt_apply_option_names_the_closest_one(staged):
    with pytest.raises(TypeError, match=r"'batchsize' \(did you mean 'batch_size'\?\)"):
        staged.eval_apply([1, 2], batchsize=2)


def test_dataloader_options_that_are_not_a_mapping_are_refused(staged):
    with pytest.raises(TypeError, match=r"loader_options=\{'timeout': 60\}"):
        staged.eval_apply([1, 2], loader_options=60)


def test_outputs_of_a_pipeline_without_batch_have_stats_and_close():
    outputs = plus_one.eval_apply([1, 2, 3])
    with outputs:
        assert next(outputs) == 2
    assert outputs.stats.items == 1
    assert list(outputs) == []
