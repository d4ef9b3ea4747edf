"""run_batches(..., post_workers=N): the post stage in worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
import torch

from padl_runtime._transport import dumps, loads
from padl_runtime.executor import run_batches
from tests.unit.padl_runtime.test_executor import (
    child_pids,
    double,
    notes,
    run_ints,
    to_int,
    to_tensor,
    wait_for_no_children,
)

# --- helpers (module level, so that they can be pickled) ----------------------------------------


def fail_post_on_50(out: torch.Tensor) -> int:
    if int(out.item()) == 100:
        raise KeyError("no label")
    return to_int(out)


def exit_on_50(out: torch.Tensor) -> int:
    if int(out.item()) == 100:
        os._exit(3)  # the worker dies as if killed
    return to_int(out)


def unpicklable_output(out: torch.Tensor) -> Any:
    return lambda: out


def slow_post(out: torch.Tensor) -> int:
    time.sleep(0.001)
    return to_int(out)


def pid_post(out: torch.Tensor) -> int:
    return os.getpid()


def interrupt_forward_at_3(batch: torch.Tensor) -> torch.Tensor:
    if int(batch[0].item()) == 3 * 8:
        raise KeyboardInterrupt
    return double(batch)


# --- transport ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tensor",
    [
        pytest.param(torch.arange(12, dtype=torch.float32).reshape(3, 4), id="float32"),
        pytest.param(torch.arange(6, dtype=torch.bfloat16), id="bfloat16"),
        pytest.param(torch.tensor([True, False, True]), id="bool"),
        pytest.param(torch.tensor([1 + 2j, 3 - 1j]), id="complex"),
        pytest.param(torch.tensor(7, dtype=torch.int64), id="0-dim"),
        pytest.param(torch.empty(0, 5), id="empty"),
        pytest.param(torch.arange(12.0).reshape(3, 4).t(), id="non-contiguous"),
        pytest.param(torch.arange(10.0)[3:7], id="view-with-offset"),
        pytest.param(torch.tensor([1 + 2j]).conj(), id="conjugate-view"),
    ],
)
def test_tensors_cross_to_a_worker_with_dtype_shape_and_values(tensor: torch.Tensor) -> None:
    back = loads(dumps({"x": [tensor]}))["x"][0]
    assert back.dtype == tensor.dtype and back.shape == tensor.shape
    assert torch.equal(back, tensor.resolve_conj())


def test_a_received_tensor_is_writable_and_owns_its_memory() -> None:
    tensor = torch.zeros(4)
    back = loads(dumps(tensor))
    back += 1  # would warn (an error here) on a read-only buffer
    assert torch.equal(tensor, torch.zeros(4))


# --- results ------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("post_workers", [1, 3])
def test_post_workers_keep_input_order(num_workers: int, post_workers: int) -> None:
    outputs = run_ints(range(300), batch_size=7, num_workers=num_workers, post_workers=post_workers)
    assert list(outputs) == [2 * i for i in range(300)]


def test_postprocessing_runs_in_other_processes() -> None:
    pids = set(run_ints(range(64), batch_size=8, postprocess=pid_post, post_workers=2))
    assert len(pids) == 2 and os.getpid() not in pids


def test_postprocess_batch_runs_in_post_workers() -> None:
    outputs = run_batches(
        range(20),
        preprocess=to_tensor,
        forward=double,
        postprocess=None,
        postprocess_batch=torch.Tensor.tolist,
        batch_size=6,
        post_workers=2,
    )
    assert list(outputs) == [[2.0 * i] for i in range(20)]


def test_post_workers_must_be_a_non_negative_integer() -> None:
    with pytest.raises(ValueError, match="post_workers must be a non-negative integer"):
        run_ints(range(3), post_workers=-1)


# --- errors -------------------------------------------------------------------------------------


def test_postprocess_error_in_a_worker_keeps_its_type_and_names_the_item() -> None:
    with pytest.raises(KeyError) as info:
        list(run_ints(range(200), postprocess=fail_post_on_50, batch_size=16, post_workers=2))
    assert "while postprocessing item 50" in notes(info.value)
    assert "Traceback in a post worker process" in notes(info.value)
    assert getattr(info.value, "padl_stage", None) == "postprocess"


def test_an_unpicklable_output_is_an_error_naming_post_workers() -> None:
    with pytest.raises(Exception, match="pickle") as info:
        list(run_ints(range(10), postprocess=unpicklable_output, batch_size=4, post_workers=1))
    assert "post_workers needs picklable outputs" in notes(info.value)


def test_a_worker_that_dies_is_an_error_not_a_hang() -> None:
    before = child_pids()
    with pytest.raises(RuntimeError, match=r"exited unexpectedly \(exit code 3\)"):
        list(run_ints(range(200), postprocess=exit_on_50, batch_size=16, post_workers=2))
    assert wait_for_no_children(before) == set()


def test_unpicklable_postprocess_under_spawn_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match=r"postprocess .*cannot be sent to post worker processes"):
        run_ints(
            range(4), postprocess=lambda out: 0, post_workers=1, multiprocessing_context="spawn"
        ).outputs().__next__()


# --- shutdown -----------------------------------------------------------------------------------


def test_breaking_out_early_shuts_down_post_workers() -> None:
    before = child_pids()
    for output in run_ints(range(10_000), postprocess=slow_post, batch_size=8, post_workers=2):
        if output == 20:
            break
    assert wait_for_no_children(before) == set()


def test_an_error_shuts_down_post_workers() -> None:
    before = child_pids()
    with pytest.raises(KeyError):
        list(run_ints(range(200), postprocess=fail_post_on_50, batch_size=16, post_workers=2))
    assert wait_for_no_children(before) == set()


def test_keyboard_interrupt_in_the_forward_shuts_down_post_and_loader_workers() -> None:
    before = child_pids()
    with pytest.raises(KeyboardInterrupt):
        list(
            run_batches(
                range(200),
                preprocess=to_tensor,
                forward=interrupt_forward_at_3,
                postprocess=to_int,
                batch_size=8,
                num_workers=2,
                post_workers=2,
            )
        )
    assert wait_for_no_children(before) == set()


_WITHOUT_NUMPY = """
import sys

class NoNumpy:
    def find_spec(self, name, path=None, target=None):
        if name == "numpy" or name.startswith("numpy."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NoNumpy())
import torch
from padl_runtime.executor import run_batches

def pre(i):
    return torch.tensor([float(i)])

def post(out):
    return float(out)

print(list(run_batches(range(5), preprocess=pre, forward=lambda b: b * 2, postprocess=post,
                       batch_size=2, post_workers=1)))
"""


@pytest.mark.slow  # a fresh process
def test_post_workers_need_no_numpy() -> None:
    """padl_runtime needs torch only; torch itself runs without numpy."""
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_NUMPY],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[0.0, 2.0, 4.0, 6.0, 8.0]"


_KILLED_MAIN = """
import itertools, os, sys, time
import torch
from padl_runtime.executor import run_batches

def pre(i):
    return torch.tensor([float(i)])

def post(out):
    return os.getpid()

seen = set()
for pid in run_batches(itertools.count(), preprocess=pre, forward=lambda b: b, postprocess=post,
                       batch_size=4, post_workers=2):
    if pid not in seen:
        seen.add(pid)
        if len(seen) == 2:
            print(*sorted(seen), flush=True)
            time.sleep(60)  # killed here, with both workers alive and waiting
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.slow  # a fresh process
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process states from /proc")
def test_post_workers_exit_when_the_main_process_is_killed() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _KILLED_MAIN],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    ) as child:
        try:
            assert child.stdout is not None
            workers = [int(pid) for pid in child.stdout.readline().split()]
            assert len(workers) == 2 and all(map(_alive, workers))
        finally:
            child.kill()  # SIGKILL: no cleanup code of the main process runs
            child.wait()
    deadline = time.monotonic() + 10
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    orphans = [pid for pid in workers if _alive(pid)]
    for pid in orphans:  # leave no process behind, even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert orphans == []
