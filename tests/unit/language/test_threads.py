"""Applying one pipeline from several threads: layer modes are switched per mode under a gate,
every submodule's mode is restored, and a re-bound global layer is seen at once."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

from padlc import batch, transform, unbatch
from padlc.language.layer_modes import gates_of


@pytest.fixture
def tiny_switch_interval() -> Iterator[None]:
    """Threads switch every microsecond, so an unprotected mode switch shows at once."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _threads(count: int, target: Callable[[int], None]) -> list[BaseException]:
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            target(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


@transform
def as_tensor(x):
    return torch.tensor(x, dtype=torch.float32)


def _training_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5))  # in train mode


def test_concurrent_infer_apply_gives_the_sequential_outputs(tiny_switch_interval: None) -> None:
    pipeline = as_tensor >> batch >> transform(_training_model()) >> unbatch
    items = [[float(i), 1.0, -1.0, 0.5] for i in range(8)]
    expected = [pipeline.infer_apply(x) for x in items]
    wrong: list[int] = []

    def work(index: int) -> None:
        for _ in range(150):
            for i, x in enumerate(items):
                if not torch.equal(pipeline.infer_apply(x), expected[i]):
                    wrong.append(i)

    errors = _threads(8, work)
    assert errors == [] and wrong == []


class _Recorder(torch.nn.Module):
    """Records, per thread, whether it ran in train mode."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)
        self.seen: dict[int, list[bool]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.setdefault(threading.get_ident(), []).append(self.training)
        return self.linear(x)


def test_train_apply_and_infer_apply_in_two_threads_keep_their_own_modes(
    tiny_switch_interval: None,
) -> None:
    recorder = _Recorder()
    pipeline = as_tensor >> batch >> transform(recorder) >> unbatch
    items = [[1.0, 2.0, 3.0, 4.0]] * 64
    idents: dict[str, int] = {}

    def work(index: int) -> None:
        if index == 0:
            idents["train"] = threading.get_ident()
            for _ in range(20):
                for _output in pipeline.train_apply(items, batch_size=2):
                    pass
        else:
            idents[f"infer{index}"] = threading.get_ident()
            for _ in range(300):
                pipeline.infer_apply(items[0])

    errors = _threads(3, work)
    assert errors == []
    assert set(recorder.seen[idents["train"]]) == {True}
    assert set(recorder.seen[idents["infer1"]]) == {False}
    assert set(recorder.seen[idents["infer2"]]) == {False}
    assert recorder.training  # as it was before


def test_a_frozen_submodule_keeps_its_mode_after_infer_apply() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    net[1].eval()  # frozen statistics inside a model in train mode
    pipeline = as_tensor >> batch >> transform(net) >> unbatch
    pipeline.infer_apply([1.0, 2.0, 3.0])
    list(pipeline.eval_apply([[1.0, 2.0, 3.0]] * 4, batch_size=2))
    assert net.training and net[0].training
    assert not net[1].training


def test_eval_apply_restores_every_submodule_of_an_eval_model_after_train_apply() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Dropout(0.1)).eval()
    net[1].train()  # dropout kept on at inference on purpose (MC dropout)
    pipeline = as_tensor >> batch >> transform(net) >> unbatch
    list(pipeline.train_apply([[1.0, 2.0, 3.0]] * 4, batch_size=2))
    assert [m.training for m in net.modules()] == [False, False, True]


def test_a_re_bound_global_layer_is_applied_in_eval_mode() -> None:
    namespace: dict[str, Any] = {"torch": torch}
    exec(  # a notebook: the layer is a global of the cell, the function reads it
        "encoder = torch.nn.Identity()\ndef encode(x):\n    return encoder(x)\n", namespace
    )
    pipeline = as_tensor >> batch >> transform(namespace["encode"]) >> unbatch
    assert torch.equal(pipeline.infer_apply([2.0, 2.0, 2.0, 2.0]), torch.full((4,), 2.0))
    torch.manual_seed(0)
    namespace["encoder"] = torch.nn.Dropout(0.5)  # the cell run again with another layer
    assert namespace["encoder"].training
    assert torch.equal(pipeline.infer_apply([2.0, 2.0, 2.0, 2.0]), torch.full((4,), 2.0))
    assert namespace["encoder"] in pipeline.pd_layers


def test_infer_apply_on_layers_already_in_eval_mode_takes_no_lock() -> None:
    model = torch.nn.Linear(4, 4).eval()
    pipeline = as_tensor >> batch >> transform(model) >> unbatch
    pipeline.infer_apply([1.0, 2.0, 3.0, 4.0])
    (gate,) = gates_of(pipeline.pd_layers)
    done = threading.Event()
    with gate.cond:  # the gate's lock is held here: a call that took it would wait
        thread = threading.Thread(target=lambda: (pipeline.infer_apply([1.0] * 4), done.set()))
        thread.start()
        assert done.wait(timeout=30)
    thread.join()


def test_a_train_apply_waits_for_infer_calls_running_without_a_lock() -> None:
    model = torch.nn.Linear(4, 4).eval()
    entered, release = threading.Event(), threading.Event()

    @transform
    def slow(x):
        entered.set()
        release.wait(timeout=30)
        return x

    infer = as_tensor >> batch >> transform(model) >> slow >> unbatch
    train = as_tensor >> batch >> transform(model) >> unbatch
    thread = threading.Thread(target=lambda: infer.infer_apply([1.0] * 4))
    thread.start()
    assert entered.wait(timeout=30)
    modes: list[bool] = []
    (layer,) = train.pd_layers  # a copy of `model` sharing its weights and its gate
    trainer = threading.Thread(
        target=lambda: modes.extend(layer.training for _ in train.train_apply([[1.0] * 4]))
    )
    trainer.start()
    trainer.join(timeout=0.5)
    assert trainer.is_alive() and not layer.training  # waiting: the infer call runs in eval mode
    release.set()
    thread.join(timeout=30)
    trainer.join(timeout=30)
    assert modes == [True] and not layer.training
