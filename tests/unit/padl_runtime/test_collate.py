"""padl_runtime.collate.collate inside DataLoader workers."""

from __future__ import annotations

import pytest
import torch


class _SharedCheck(torch.utils.data.Dataset[bool]):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> list[bool]:
        from padl_runtime.collate import collate

        return [collate([torch.ones(3), torch.zeros(3)]).is_shared()]


@pytest.mark.parametrize(("num_workers", "shared"), [(0, False), (1, True)])
def test_collate_in_a_worker_stacks_straight_into_shared_memory(
    num_workers: int, shared: bool
) -> None:
    loader = torch.utils.data.DataLoader(
        _SharedCheck(), batch_size=None, num_workers=num_workers, collate_fn=lambda x: x
    )
    assert list(loader) == [[shared]]


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
