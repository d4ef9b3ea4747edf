"""Behaviour of padl_runtime.executor.run_batches: order, counting, stage semantics, errors, shutdown."""

from __future__ import annotations

import collections
import gc
import glob
import multiprocessing
import os
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from padl_runtime.executor import BatchIterator, run_batches

# --- helpers (module level, so that they can be pickled) ----------------------------------------


def to_tensor(x: Any) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.float32).reshape(1)


def double(batch: torch.Tensor) -> torch.Tensor:
    return batch * 2


def to_int(out: torch.Tensor) -> int:
    return int(out.item())


def uneven_preprocess(x: int) -> torch.Tensor:
    # Even batches (of 16) are slow, odd ones fast: workers finish out of order.
    if (x // 16) % 2 == 0:
        time.sleep(0.0005)
    return to_tensor(x)


def fail_on_7(x: int) -> torch.Tensor:
    if x == 7:
        raise ValueError("bad item")
    return to_tensor(x)


def key_error_on_7(x: int) -> torch.Tensor:
    if x == 7:
        raise KeyError("missing")
    return to_tensor(x)


class TwoArgError(Exception):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(code, detail)
        self.code = code


def two_arg_error_on_7(x: int) -> torch.Tensor:
    if x == 7:
        raise TwoArgError(3, "detail")
    return to_tensor(x)


def interrupt_on_40(x: int) -> torch.Tensor:
    if x == 40:
        raise KeyboardInterrupt
    return to_tensor(x)


def worker_id_preprocess(x: int) -> torch.Tensor:
    return to_tensor(int(os.environ["PADL_TEST_WORKER"]))


def set_worker_env(worker_id: int) -> None:
    os.environ["PADL_TEST_WORKER"] = str(worker_id)


def failing_generator(n: int, fail_at: int) -> Iterator[int]:
    for i in range(n):
        if i == fail_at:
            raise OSError("input broke")
        yield i


def child_pids() -> set[int]:
    """Live children of this process, read from /proc (catches processes multiprocessing forgot)."""
    multiprocessing.active_children()  # reaps finished children
    pids: set[int] = set()
    for path in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
        try:
            with open(path) as f:
                pids.update(int(pid) for pid in f.read().split())
        except FileNotFoundError:  # that thread has just exited
            continue
    return pids


def wait_for_no_children(before: set[int], timeout: float = 5.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while (extra := child_pids() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    return extra


def post_threads_alive() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("padl-post")]


def notes(exc: BaseException) -> str:
    return "\n".join(getattr(exc, "__notes__", []))


def run_ints(items: Any, **options: Any) -> BatchIterator:
    options.setdefault("preprocess", to_tensor)
    options.setdefault("postprocess", to_int)
    return run_batches(items, forward=double, **options)


# --- order and inputs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_input",
    [
        pytest.param(lambda n: list(range(n)), id="list"),
        pytest.param(lambda n: tuple(range(n)), id="tuple"),
        pytest.param(lambda n: range(n), id="range"),
        pytest.param(lambda n: torch.arange(n), id="tensor"),
        pytest.param(lambda n: np.arange(n), id="numpy"),
        pytest.param(lambda n: (i for i in range(n)), id="generator"),
    ],
)
def test_outputs_follow_input_order_for_each_input_kind(make_input: Any) -> None:
    assert list(run_ints(make_input(203), batch_size=16)) == [2 * i for i in range(203)]


@pytest.mark.parametrize("kind", ["list", "generator"])
def test_outputs_follow_input_order_with_workers_finishing_out_of_order(kind: str) -> None:
    items = list(range(500)) if kind == "list" else (i for i in range(500))
    outputs = run_ints(items, preprocess=uneven_preprocess, batch_size=16, num_workers=2)
    assert list(outputs) == [2 * i for i in range(500)]


def test_tensor_input_without_preprocess_is_batched_by_rows_as_a_copy() -> None:
    data = torch.arange(30.0).reshape(10, 3)
    batches = list(
        run_batches(
            data, preprocess=None, forward=lambda b: b.add_(1), postprocess=None, batch_size=4
        )
    )
    assert [b.shape[0] for b in batches] == [4, 4, 2]
    assert torch.equal(torch.cat(batches), torch.arange(30.0).reshape(10, 3) + 1)
    assert torch.equal(data, torch.arange(30.0).reshape(10, 3))  # the forward wrote into a copy


def test_empty_input_yields_nothing() -> None:
    assert list(run_ints([])) == []
    assert list(run_ints([], postprocess=None)) == []
    assert list(run_ints(iter([]), num_workers=2)) == []


# --- batching, len, flatten / use_post ----------------------------------------------------------


def test_batches_hold_batch_size_items_and_the_last_holds_the_rest() -> None:
    sizes: list[int] = []

    def forward(batch: torch.Tensor) -> torch.Tensor:
        sizes.append(batch.shape[0])
        return batch

    list(
        run_batches(
            range(150), preprocess=to_tensor, forward=forward, postprocess=to_int, batch_size=64
        )
    )
    assert sizes == [64, 64, 22]


def test_len_counts_items_when_outputs_are_per_item() -> None:
    assert len(run_ints(range(150), batch_size=64)) == 150


def test_len_counts_batches_when_outputs_are_per_batch() -> None:
    outputs = run_ints(range(150), batch_size=64, postprocess=None)
    assert len(outputs) == 3
    assert len(list(outputs)) == 3


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("kind", ["list", "generator"])
def test_drop_last_leaves_out_a_short_last_batch(num_workers: int, kind: str) -> None:
    items: Any = list(range(10)) if kind == "list" else (i for i in range(10))
    outputs = run_ints(items, batch_size=4, drop_last=True, num_workers=num_workers)
    assert list(outputs) == [2 * i for i in range(8)]


def test_drop_last_counts_only_whole_batches() -> None:
    assert len(run_ints(range(10), batch_size=4, drop_last=True)) == 8


def test_len_of_a_generator_input_raises_type_error() -> None:
    with pytest.raises(TypeError, match="no length"):
        len(run_ints(i for i in range(3)))


def test_len_starts_no_workers() -> None:
    before = child_pids()
    assert len(run_ints(range(10), num_workers=2)) == 10
    assert child_pids() - before == set()


def test_use_post_false_yields_the_forward_output_per_batch() -> None:
    outputs = list(run_ints(range(10), batch_size=4, use_post=False))
    assert [o.tolist() for o in outputs] == [
        [[0.0], [2.0], [4.0], [6.0]],
        [[8.0], [10.0], [12.0], [14.0]],
        [[16.0], [18.0]],
    ]


def test_flatten_without_postprocess_yields_one_forward_row_per_item() -> None:
    outputs = list(run_ints(range(5), batch_size=2, postprocess=None, flatten=True))
    assert [o.tolist() for o in outputs] == [[0.0], [2.0], [4.0], [6.0], [8.0]]


def test_flatten_with_use_post_false_skips_postprocess() -> None:
    outputs = list(run_ints(range(3), batch_size=2, use_post=False, flatten=True))
    assert all(isinstance(o, torch.Tensor) for o in outputs)


def test_postprocess_batch_maps_a_whole_forward_output_to_items() -> None:
    outputs = run_ints(
        range(5),
        batch_size=2,
        postprocess=None,
        postprocess_batch=lambda b: b.flatten().int().tolist(),
    )
    assert len(outputs) == 5
    assert list(outputs) == [0, 2, 4, 6, 8]


def test_postprocess_and_postprocess_batch_together_are_rejected() -> None:
    with pytest.raises(TypeError, match="either"):
        run_ints(range(3), postprocess_batch=list)


def test_postprocess_batch_returning_the_wrong_count_is_an_error() -> None:
    with pytest.raises(ValueError, match="Expected 2 outputs"):
        list(run_ints(range(2), postprocess=None, postprocess_batch=lambda b: [1]))


@pytest.mark.parametrize("post_threads", [0, 1, 2])
def test_post_threads_keep_order(post_threads: int) -> None:
    assert list(run_ints(range(300), batch_size=7, post_threads=post_threads)) == [
        2 * i for i in range(300)
    ]


def test_progress_bar_reports_the_items_and_keeps_the_outputs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert list(run_ints(range(5), batch_size=2, progress=True)) == [0, 2, 4, 6, 8]
    assert "5/5" in capsys.readouterr().err


def test_progress_without_tqdm_says_how_to_get_the_bar_and_runs_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `import tqdm` raises ImportError
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.warns(RuntimeWarning, match=r"tqdm is not installed.*pip install tqdm"):
        outputs = run_ints(range(3), progress=True)
    assert list(outputs) == [0, 2, 4]


def test_device_may_be_given_as_a_torch_device() -> None:
    assert list(run_ints(range(3), device=torch.device("cpu"))) == [0, 2, 4]


# --- DataLoader options -------------------------------------------------------------------------


def test_loader_kwargs_reach_the_dataloader() -> None:
    outputs = set(
        run_ints(
            range(256),
            batch_size=8,
            num_workers=2,
            preprocess=worker_id_preprocess,
            worker_init_fn=set_worker_env,
        )
    )
    assert outputs == {0, 2}  # both workers ran, each with its init function applied


def test_loader_kwargs_the_executor_sets_itself_are_rejected() -> None:
    with pytest.raises(TypeError, match="collate_fn"):
        run_ints(range(3), num_workers=2, collate_fn=list)


def test_shuffle_is_rejected_because_order_is_kept() -> None:
    with pytest.raises(ValueError, match="shuffle"):
        run_ints(range(3), num_workers=2, shuffle=True)


def test_unpicklable_preprocess_under_spawn_is_a_clear_error() -> None:
    before = child_pids()
    outputs = run_ints(
        range(3), num_workers=2, preprocess=lambda x: to_tensor(x), multiprocessing_context="spawn"
    )
    with pytest.raises(
        TypeError, match=r"preprocess .*cannot be sent to DataLoader worker processes"
    ):
        next(outputs)
    assert child_pids() - before == set()


def test_unpicklable_preprocess_under_fork_just_works() -> None:
    outputs = run_ints(
        range(20),
        num_workers=2,
        batch_size=4,
        preprocess=lambda x: to_tensor(x),
        multiprocessing_context="fork",
    )
    assert list(outputs) == [2 * i for i in range(20)]


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_workers", [0, 2])
def test_preprocess_error_keeps_its_type_and_names_the_item(num_workers: int) -> None:
    with pytest.raises(ValueError, match="bad item") as info:
        list(run_ints(range(100), preprocess=fail_on_7, batch_size=4, num_workers=num_workers))
    assert "while preprocessing item 7" in notes(info.value)
    assert "while preprocessing item 7" in "".join(traceback.format_exception(info.value))


def test_worker_error_keeps_key_error_type() -> None:
    with pytest.raises(KeyError) as info:
        list(run_ints(range(100), preprocess=key_error_on_7, batch_size=4, num_workers=2))
    assert info.value.args == ("missing",)
    assert "while preprocessing item 7" in notes(info.value)


def test_worker_error_keeps_a_type_with_a_multi_argument_constructor() -> None:
    # DataLoader's own re-raise would turn this into a RuntimeError.
    with pytest.raises(TwoArgError) as info:
        list(run_ints(range(100), preprocess=two_arg_error_on_7, batch_size=4, num_workers=2))
    assert info.value.code == 3
    assert "while preprocessing item 7" in notes(info.value)
    assert "two_arg_error_on_7" in notes(info.value)  # the worker's traceback comes along


@pytest.mark.parametrize("num_workers", [0, 2])
def test_input_generator_error_names_the_item_being_read(num_workers: int) -> None:
    with pytest.raises(OSError, match="input broke") as info:
        list(run_ints(failing_generator(100, fail_at=37), batch_size=8, num_workers=num_workers))
    assert "while reading item 37 from the input" in notes(info.value)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_forward_error_keeps_its_type_and_names_the_batch(num_workers: int) -> None:
    def forward(batch: torch.Tensor) -> torch.Tensor:
        if batch[0].item() == 64:
            raise RuntimeError("shape mismatch")
        return batch

    with pytest.raises(RuntimeError, match="shape mismatch") as info:
        list(
            run_batches(
                range(200),
                preprocess=to_tensor,
                forward=forward,
                postprocess=to_int,
                batch_size=64,
                num_workers=num_workers,
            )
        )
    assert "in the forward of the batch of items 64\u2013127" in notes(info.value)


@pytest.mark.parametrize("post_threads", [0, 1])
def test_postprocess_error_keeps_its_type_and_names_the_item(post_threads: int) -> None:
    def post(out: torch.Tensor) -> int:
        if out.item() == 140:
            raise ZeroDivisionError("post")
        return to_int(out)

    with pytest.raises(ZeroDivisionError) as info:
        list(run_ints(range(200), postprocess=post, batch_size=64, post_threads=post_threads))
    assert "while postprocessing item 70" in notes(info.value)


@pytest.mark.parametrize("size", [4, 100_000], ids=["by value", "shared memory"])
def test_a_batch_that_cannot_be_pickled_in_a_worker_is_an_error_not_a_hang(size: int) -> None:
    # A namedtuple type made inside a function cannot be pickled (pickle finds classes by name).
    # The worker must say so; a batch lost in the queue's feeder thread would block the main
    # process forever (timeout: the DataLoader raises instead of hanging if that comes back).
    Pair = collections.namedtuple("Pair", "a b")

    def preprocess(x: int) -> Any:
        return Pair(torch.full((size,), float(x)), x)

    with pytest.raises(Exception, match="Pair") as info:
        list(
            run_batches(
                range(10),
                preprocess=preprocess,
                forward=lambda batch: batch.a[:, 0],
                postprocess=to_int,
                batch_size=4,
                num_workers=1,
                timeout=60,
            )
        )
    assert "while sending the batch of items 0\u20133 from the DataLoader worker" in notes(
        info.value
    )
    assert "must be picklable" in notes(info.value)


def test_a_misspelt_option_is_an_error_even_without_workers() -> None:
    with pytest.raises(TypeError, match="'batchsize' \\(did you mean 'batch_size'\\?\\)"):
        run_ints(range(4), batchsize=2)


def test_collate_error_names_the_batch() -> None:
    with pytest.raises(TypeError, match="Cannot batch") as info:
        list(
            run_batches(
                range(10),
                preprocess=lambda x: object(),
                forward=double,
                postprocess=None,
                batch_size=4,
            )
        )
    assert "while collating the batch of items 0\u20133" in notes(info.value)


# --- shutdown -----------------------------------------------------------------------------------


def test_breaking_out_early_shuts_down_workers() -> None:
    before = child_pids()
    for _ in run_ints(range(10_000), batch_size=8, num_workers=2):
        assert child_pids() - before  # the workers are running
        break
    assert wait_for_no_children(before, timeout=0) == set()


@pytest.mark.parametrize("stop", ["close", "del", "with"])
def test_stopping_the_iterator_shuts_down_workers(stop: str) -> None:
    before = child_pids()
    outputs = run_ints(range(10_000), batch_size=8, num_workers=2)
    if stop == "with":
        with outputs:
            next(outputs)
    else:
        next(outputs)
        if stop == "close":
            outputs.close()
        else:
            del outputs
    assert wait_for_no_children(before, timeout=0) == set()


def test_closing_a_wrapping_generator_shuts_down_workers() -> None:
    before = child_pids()

    def consumer() -> Iterator[int]:
        yield from run_ints(range(10_000), batch_size=8, num_workers=2)

    wrapped = consumer()
    next(wrapped)
    wrapped.close()
    assert wait_for_no_children(before, timeout=0) == set()


def fail_in_forward(batch: torch.Tensor) -> torch.Tensor:
    if batch[0].item() >= 40:
        raise ValueError("forward broke")
    return batch


@pytest.mark.parametrize("stage", ["preprocess", "forward"])
def test_an_error_shuts_down_workers_while_the_caller_holds_the_exception(stage: str) -> None:
    before = child_pids()
    options: dict[str, Any] = {"preprocess": fail_on_7} if stage == "preprocess" else {}
    forward = fail_in_forward if stage == "forward" else double
    with pytest.raises(ValueError) as info:
        list(
            run_batches(
                range(10_000),
                forward=forward,
                postprocess=to_int,
                batch_size=4,
                num_workers=2,
                **{"preprocess": to_tensor, **options},
            )
        )
    assert info.value.__traceback__ is not None  # the traceback (and its frames) is still alive
    assert wait_for_no_children(before, timeout=0) == set()


def test_keyboard_interrupt_in_a_worker_reaches_the_caller_and_shuts_down_workers() -> None:
    before = child_pids()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        list(run_ints(range(10_000), preprocess=interrupt_on_40, batch_size=4, num_workers=2))
    assert time.monotonic() - started < 4  # not DataLoader's "worker exited unexpectedly" timeout
    assert wait_for_no_children(before, timeout=0) == set()


def test_keyboard_interrupt_in_the_forward_shuts_down_workers_and_threads() -> None:
    before = child_pids()

    def forward(batch: torch.Tensor) -> torch.Tensor:
        if batch[0].item() >= 40:
            raise KeyboardInterrupt
        return batch

    with pytest.raises(KeyboardInterrupt):
        list(
            run_batches(
                range(10_000),
                preprocess=to_tensor,
                forward=forward,
                postprocess=to_int,
                batch_size=4,
                num_workers=2,
                post_threads=1,
            )
        )
    assert wait_for_no_children(before, timeout=0) == set()
    assert post_threads_alive() == []


def test_keyboard_interrupt_inline_propagates() -> None:
    with pytest.raises(KeyboardInterrupt):
        list(run_ints(range(100), preprocess=interrupt_on_40, batch_size=4))


def test_breaking_out_early_stops_post_threads() -> None:
    for _ in run_ints(range(10_000), batch_size=8, post_threads=2):
        break
    gc.collect()
    assert post_threads_alive() == []


# --- streaming ----------------------------------------------------------------------------------


@pytest.mark.parametrize("post_threads", [0, 1])
def test_a_generator_is_read_at_most_a_few_batches_ahead(post_threads: int) -> None:
    read = 0

    def items() -> Iterator[int]:
        nonlocal read
        for i in range(20_000):
            read = i + 1
            yield i

    outputs = run_ints(items(), batch_size=100, post_threads=post_threads)
    for consumed, _ in enumerate(outputs, start=1):
        if consumed == 1_000:
            break
    assert 1_000 <= read <= 1_000 + 3 * 100


class Output:
    def __init__(self, value: int) -> None:
        self.value = value


@pytest.mark.parametrize("post_threads", [0, 1])
def test_delivered_outputs_are_not_kept_alive_by_the_executor(post_threads: int) -> None:
    refs: list[weakref.ref[Output]] = []
    outputs = run_ints(
        range(5_000),
        batch_size=50,
        postprocess=lambda o: Output(to_int(o)),
        post_threads=post_threads,
    )
    for out in outputs:
        refs.append(weakref.ref(out))
    del out
    alive = sum(ref() is not None for ref in refs)
    assert alive <= 3 * 50


# --- CUDA (runs only where a GPU is present) ----------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("num_workers", [0, 2])
def test_cuda_outputs_match_cpu_outputs(num_workers: int) -> None:
    def forward(batch: torch.Tensor) -> torch.Tensor:
        assert batch.is_cuda
        return (batch @ torch.ones(1, 1, device=batch.device)) * 2

    outputs = run_batches(
        range(1000),
        preprocess=to_tensor,
        forward=forward,
        postprocess=to_int,
        batch_size=64,
        num_workers=num_workers,
        device="cuda",
    )
    assert list(outputs) == [2 * i for i in range(1000)]


def test_run_hooks_are_called_around_the_run_and_on_errors():
    from padl_runtime.executor import RunHooks

    events: list[str] = []

    def fail_on_three(x):
        if x == 3:
            raise ValueError("three")
        return torch.tensor(float(x))

    hooks = RunHooks(
        start=lambda: events.append("start"),
        error=lambda exc: events.append(f"error {type(exc).__name__}"),
        end=lambda: events.append("end"),
    )
    outputs = run_batches(
        range(5), preprocess=fail_on_three, forward=lambda b: b, postprocess=None, batch_size=2,
        flatten=True, hooks=hooks,
    )  # fmt: skip
    assert events == []  # nothing runs before the first output is asked for
    with pytest.raises(ValueError, match="three"):
        list(outputs)
    assert events == ["start", "error ValueError", "end"]


# --- run statistics -----------------------------------------------------------------------------


def slow_preprocess(x: int) -> torch.Tensor:
    time.sleep(0.002)
    return to_tensor(x)


def slow_forward(batch: torch.Tensor) -> torch.Tensor:
    time.sleep(0.02)
    return double(batch)


def slow_postprocess(out: torch.Tensor) -> int:
    time.sleep(0.002)
    return to_int(out)


@pytest.mark.parametrize(
    ("slow", "stage"),
    [
        ({"preprocess": slow_preprocess}, "input_seconds"),
        ({"forward": slow_forward}, "forward_seconds"),
        ({"postprocess": slow_postprocess}, "post_seconds"),
    ],
)
def test_stats_put_the_time_in_the_slow_stage(slow: dict[str, Any], stage: str) -> None:
    # Each slow stage sleeps 20 ms per batch; the others take microseconds.
    options = {"preprocess": to_tensor, "forward": double, "postprocess": to_int, **slow}
    outputs = run_batches(range(40), batch_size=10, **options)
    assert list(outputs) == [2 * i for i in range(40)]
    stats = outputs.stats
    assert (stats.batches, stats.items) == (4, 40)
    shares = {s: getattr(stats, s) for s in ("input_seconds", "forward_seconds", "post_seconds")}
    assert max(shares, key=shares.__getitem__) == stage
    assert shares[stage] >= 0.06  # 4 batches x 20 ms, less the timer's own slack


def test_stats_leave_out_the_callers_time_between_outputs() -> None:
    outputs = run_ints(range(8), batch_size=4)
    for _ in outputs:
        time.sleep(0.05)  # 0.4 s of the caller's own work
    assert outputs.stats.seconds < 0.2  # with the caller's time it would be over 0.4
    assert "2 batches, 8 outputs" in str(outputs.stats)


@pytest.mark.parametrize("workers", [{"num_workers": 1}, {"post_workers": 1}])
def test_stats_report_the_time_starting_worker_processes_took(workers: dict[str, int]) -> None:
    outputs = run_ints(range(8), batch_size=4, **workers)
    assert list(outputs) == [2 * i for i in range(8)]
    assert outputs.stats.start_seconds > 0
    assert "worker processes started in" in str(outputs.stats)


def test_stats_of_a_run_without_worker_processes_have_no_start_time() -> None:
    outputs = run_ints(range(8), batch_size=4)
    list(outputs)
    assert outputs.stats.start_seconds == 0
    assert "started" not in str(outputs.stats)
