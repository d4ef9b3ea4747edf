"""padl_runtime.collate.collate inside DataLoader workers."""

from __future__ import annotations

import pytest
import torch


class _SharedCheck(torch.utils.data.Dataset[bool]):
    """Whether a batch of two items of ``size`` floats, collated here, is in shared memory."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> list[bool]:
        from padl_runtime.collate import collate

        return [collate([torch.ones(self.size), torch.zeros(self.size)]).is_shared()]


def _shared(size: int, num_workers: int) -> bool:
    loader = torch.utils.data.DataLoader(
        _SharedCheck(size), batch_size=None, num_workers=num_workers, collate_fn=lambda x: x
    )
    ((shared,),) = list(loader)
    return bool(shared)


LARGE = 64 * 1024  # floats per item: a 512 KiB batch, above what travels by value
SMALL = 1024  # a 8 KiB batch


@pytest.mark.parametrize(("num_workers", "shared"), [(0, False), (1, True)])
def test_a_large_batch_collated_in_a_worker_is_stacked_straight_into_shared_memory(
    num_workers: int, shared: bool
) -> None:
    assert _shared(LARGE, num_workers) is shared


def test_a_small_batch_collated_in_a_worker_stays_in_ordinary_memory() -> None:
    assert _shared(SMALL, num_workers=1) is False


class _MixedDtypes(torch.utils.data.Dataset[torch.Tensor]):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> torch.Tensor:
        from padl_runtime.collate import collate

        return collate([torch.tensor([1, 2]), torch.tensor([0.5, 1.5])])


def test_collate_in_a_worker_promotes_mixed_dtypes_as_stack_does() -> None:
    loader = torch.utils.data.DataLoader(
        _MixedDtypes(), batch_size=None, num_workers=1, collate_fn=lambda x: x
    )
    (batch,) = list(loader)
    assert batch.dtype == torch.float32
    assert torch.equal(batch, torch.tensor([[1.0, 2.0], [0.5, 1.5]]))
