"""Batches sent by value between the processes of a run (padl_runtime._transport)."""

from __future__ import annotations

from multiprocessing.reduction import ForkingPickler
from typing import Any

import pytest
import torch

from padl_runtime._transport import BY_VALUE_BYTES, by_value, by_value_bytes
from padl_runtime.executor import run_batches

# --- the wrapper ------------------------------------------------------------------------------


def _through_a_queue(value: Any) -> Any:
    """What a torch multiprocessing queue does to a value: ForkingPickler out, pickle in."""
    return ForkingPickler.loads(bytes(ForkingPickler.dumps(value)))


@pytest.mark.parametrize(
    "tensor",
    [
        pytest.param(torch.arange(12, dtype=torch.int64).reshape(3, 4), id="int64"),
        pytest.param(torch.tensor([True, False, True]), id="bool"),
        pytest.param(torch.randn(4, 3, dtype=torch.float16), id="float16"),
        pytest.param(torch.arange(12.0).reshape(3, 4).t(), id="not contiguous"),
        pytest.param(torch.empty(0, 5), id="empty"),
        pytest.param(torch.tensor(2.5), id="0-d"),
    ],
)
def test_a_tensor_sent_by_value_arrives_equal_with_its_dtype_and_shape(
    tensor: torch.Tensor,
) -> None:
    received = _through_a_queue(by_value(tensor))
    assert type(received) is torch.Tensor
    assert received.dtype == tensor.dtype and received.shape == tensor.shape
    assert torch.equal(received, tensor)


def test_a_nested_batch_sent_by_value_arrives_as_the_same_structure() -> None:
    batch = (3, 2, {"ids": torch.tensor([[1, 2], [3, 4]]), "text": ["a", "b"], "none": None})
    received = _through_a_queue(by_value(batch))
    assert received[:2] == (3, 2)
    assert received[2]["text"] == ["a", "b"] and received[2]["none"] is None
    assert torch.equal(received[2]["ids"], batch[2]["ids"])


def test_a_tensor_sent_by_value_is_writable_memory_of_its_own() -> None:
    original = torch.zeros(4)
    received = _through_a_queue(by_value(original))
    received += 1  # a forward may write into its input
    assert torch.equal(original, torch.zeros(4))


def test_by_value_bytes_counts_the_tensors_of_a_nested_batch() -> None:
    batch = {"a": torch.zeros(4, dtype=torch.int64), "b": (torch.zeros(2, 3), ["x"]), "c": 5}
    assert by_value_bytes(batch) == 4 * 8 + 6 * 4


@pytest.mark.parametrize(
    "tensor",
    [
        pytest.param(torch.zeros(2, requires_grad=True), id="requires grad"),
        pytest.param(torch.zeros(2, 2).to_sparse(), id="sparse"),
        pytest.param(torch.nn.Parameter(torch.zeros(2), requires_grad=False), id="subclass"),
        pytest.param(torch.zeros(2, device="meta"), id="on a device"),
    ],
)
def test_a_batch_holding_a_tensor_torch_must_send_itself_is_not_sent_by_value(
    tensor: torch.Tensor,
) -> None:
    assert by_value_bytes((torch.zeros(3), [tensor])) is None


def test_a_tensor_that_needs_a_gradient_keeps_it_through_the_by_value_pickler() -> None:
    leaf = torch.ones(3, requires_grad=True)
    received = _through_a_queue(by_value([leaf, torch.zeros(2)]))
    assert received[0].requires_grad and torch.equal(received[0], leaf)
    assert not received[1].requires_grad


# --- what the main process receives from DataLoader workers ----------------------------------


def _floats(count: int) -> torch.Tensor:
    return torch.full((count,), 1.0)


def _small(index: int) -> torch.Tensor:  # 8 floats: a batch of 8 is 256 bytes
    return _floats(8)


def _large(index: int) -> torch.Tensor:  # a batch of 8 is 1 MiB
    return _floats(32 * 1024)


def _record_sharing(batch: torch.Tensor) -> torch.Tensor:
    return torch.full((len(batch),), float(batch.is_shared()))


def _shared_flags(preprocess: Any) -> list[float]:
    outputs = run_batches(
        range(16),
        preprocess=preprocess,
        forward=_record_sharing,
        postprocess=lambda out: float(out),
        batch_size=8,
        num_workers=1,
    )
    return list(outputs)


def test_a_small_batch_from_a_worker_arrives_by_value_not_in_shared_memory() -> None:
    assert BY_VALUE_BYTES >= 8 * 8 * 4
    assert _shared_flags(_small) == [0.0] * 16


def test_a_large_batch_from_a_worker_arrives_in_shared_memory() -> None:
    assert BY_VALUE_BYTES < 8 * 32 * 1024 * 4
    assert _shared_flags(_large) == [1.0] * 16


def _indexed(index: int) -> torch.Tensor:
    return torch.full((8,), float(index))


def _first_column(batch: torch.Tensor) -> torch.Tensor:
    return batch[:, 0]


@pytest.mark.slow  # a fresh process
def test_small_batches_from_spawned_workers_arrive_whole_and_in_order() -> None:
    outputs = run_batches(
        range(40),
        preprocess=_indexed,
        forward=_first_column,
        postprocess=float,
        batch_size=8,
        num_workers=2,
        multiprocessing_context="spawn",
    )
    assert list(outputs) == [float(i) for i in range(40)]
