"""The AOTInductor loader calls a package's forward directly when its call specs are flat."""

from __future__ import annotations

import json
from typing import Any

import torch

from padl_runtime.backends.aoti import _direct

LEAF = {"type": None, "context": None, "children_spec": []}


def _spec(node: dict[str, Any]) -> str:
    return json.dumps([1, node])


def _tuple(*children: dict[str, Any]) -> dict[str, Any]:
    return {"type": "builtins.tuple", "context": "null", "children_spec": list(children)}


NO_KWARGS = {"type": "builtins.dict", "context": "[]", "children_spec": []}
#: What a package padlc builds records: ((tensor, tensor), {}) in, (tensor,) out.
FLAT = (_spec(_tuple(_tuple(LEAF, LEAF), NO_KWARGS)), _spec(_tuple(LEAF)))


class FakeLoader:
    def __init__(self, specs: tuple[str, str]) -> None:
        self.specs = specs
        self.boxed_calls = 0

    def get_call_spec(self) -> list[str]:
        return list(self.specs)

    def boxed_run(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        self.boxed_calls += 1
        return [tensors[0] + tensors[1]]


class FakeRunner:
    """A stand-in for the loaded package: its own call goes through the loader too."""

    def __init__(self, specs: tuple[str, str]) -> None:
        self.loader = FakeLoader(specs)
        self.calls = 0

    def __call__(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        self.calls += 1
        return [tensors[0] + tensors[1]]


def test_a_package_with_flat_specs_runs_through_its_loader_directly() -> None:
    runner = FakeRunner(FLAT)
    out = _direct(runner)(torch.ones(2), torch.ones(2))
    assert (runner.calls, runner.loader.boxed_calls) == (0, 1)
    assert isinstance(out, tuple) and torch.equal(out[0], torch.full((2,), 2.0))


def test_a_package_with_nested_outputs_keeps_its_own_call() -> None:
    nested_out = _spec(_tuple(_tuple(LEAF)))
    runner = FakeRunner((FLAT[0], nested_out))
    _direct(runner)(torch.ones(2), torch.ones(2))
    assert (runner.calls, runner.loader.boxed_calls) == (1, 0)


def test_a_package_with_keyword_inputs_keeps_its_own_call() -> None:
    keyword = {"type": "builtins.dict", "context": '["x"]', "children_spec": [LEAF]}
    runner = FakeRunner((_spec(_tuple(_tuple(LEAF), keyword)), FLAT[1]))
    _direct(runner)(torch.ones(2), torch.ones(2))
    assert (runner.calls, runner.loader.boxed_calls) == (1, 0)


def test_specs_this_torch_cannot_read_keep_the_packages_own_call() -> None:
    runner = FakeRunner(("not a spec", FLAT[1]))
    _direct(runner)(torch.ones(2), torch.ones(2))
    assert (runner.calls, runner.loader.boxed_calls) == (1, 0)
