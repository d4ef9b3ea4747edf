"""with_tensors_on: a moved function's constant tensors follow the forward's device (here the
meta device stands in for an accelerator: a CPU tensor mixed with a meta tensor is an error)."""

from __future__ import annotations

import pytest
import torch

from padl_runtime.moved import per_item, with_tensors_on

MEAN = torch.tensor([0.5, 0.25])


def centre(x: torch.Tensor) -> torch.Tensor:
    return x - MEAN


def make_scaler() -> object:
    scale = torch.tensor([2.0, 4.0])

    def scaled(x: torch.Tensor) -> torch.Tensor:
        return x * scale

    return scaled


def test_a_module_tensor_the_function_reads_is_moved() -> None:
    with pytest.raises(RuntimeError):
        centre(torch.zeros(2, device="meta"))
    out = with_tensors_on(centre, "meta")(torch.zeros(2, device="meta"))
    assert out.device.type == "meta" and out.shape == (2,)


def test_a_closure_tensor_is_moved() -> None:
    scaled = make_scaler()
    out = with_tensors_on(scaled, "meta")(torch.zeros(2, device="meta"))  # type: ignore[arg-type]
    assert out.device.type == "meta"


def test_the_original_function_and_module_are_untouched() -> None:
    with_tensors_on(centre, "meta")
    assert MEAN.device.type == "cpu"
    assert centre(torch.ones(2)).tolist() == [0.5, 0.75]


def test_the_moved_copy_is_made_once_per_device() -> None:
    assert with_tensors_on(centre, "meta") is with_tensors_on(centre, torch.device("meta"))


def test_on_the_cpu_the_function_is_returned_as_is() -> None:
    assert with_tensors_on(centre, "cpu") is centre


def test_a_function_without_tensors_is_returned_as_is() -> None:
    def double(x: torch.Tensor) -> torch.Tensor:
        return x * 2

    assert with_tensors_on(double, "meta") is double


def test_a_builtin_is_returned_as_is() -> None:
    assert with_tensors_on(torch.exp, "meta") is torch.exp


def scale_by_max(x: torch.Tensor) -> torch.Tensor:
    return x / x.amax()


def test_per_item_equals_vmap_on_a_batch() -> None:
    batch = torch.rand(5, 3)
    assert torch.equal(per_item(scale_by_max, batch), torch.vmap(scale_by_max)(batch))


def test_per_item_on_a_batch_of_one_equals_vmap() -> None:
    batch = torch.rand(1, 3)
    out = per_item(scale_by_max, batch)
    assert out.shape == (1, 3)
    assert torch.equal(out, torch.vmap(scale_by_max)(batch))


FACTOR = 1.0


def centred_and_factor(x: torch.Tensor) -> tuple[torch.Tensor, float]:
    return x - MEAN, FACTOR


def test_a_moved_function_reads_its_module_s_current_globals() -> None:
    global FACTOR, MEAN
    moved = with_tensors_on(centred_and_factor, "meta")
    assert moved(torch.zeros(2, device="meta"))[1] == 1.0
    before = (FACTOR, MEAN)
    try:
        FACTOR = 100.0  # a notebook changes the constant after the function was moved
        MEAN = torch.tensor([7.0, 7.0, 7.0])  # and re-binds the tensor: the new one is moved
        centred, factor = moved(torch.zeros(3, device="meta"))
        assert factor == 100.0 and centred.shape == (3,) and centred.device.type == "meta"
    finally:
        FACTOR, MEAN = before
