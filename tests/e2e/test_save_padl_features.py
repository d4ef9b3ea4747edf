"""PADL's documented saving features, saved in one process and loaded in a fresh one: scripted
modules, ``value(x, serializer)`` ("Custom serializers"), numbers by value, ``param`` with a
description and ``use_default`` ("Parameters"), and ``pd_save_options``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.roundtrip_harness import (
    expected_outputs,
    load_in_subprocess,
    run_python,
    save_in_subprocess,
)

SCRIPT = """
import warnings

import numpy as np
import torch

from padlc import batch, param, transform, unbatch, value

warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", DeprecationWarning)


class Polynomial(torch.nn.Module):
    def __init__(self, a, b):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(float(a)))
        self.b = torch.nn.Parameter(torch.tensor(float(b)))

    def forward(self, x):
        return x**self.a + x**self.b


scripted = transform(torch.jit.script(Polynomial(2, 3)))
with torch.no_grad():
    scripted.a.fill_(1.0)  # trained: no longer what the constructor makes


# "Custom serializers": save(val, path) and load(path), with a suffix ...
def save_npy(val, path):
    np.save(path, val)


def load_npy(path):
    return np.load(path)


TABLE = value(np.arange(6.0).reshape(2, 3), (save_npy, load_npy, ".npy"))


# ... or a save function returning the files it wrote, which load gets back
def save_parts(val, path):
    names = []
    for i, part in enumerate(val):
        names.append(f"{path}_{i}.npy")
        np.save(names[-1], part)
    return names


def load_parts(paths):
    return [np.load(p) for p in paths]


PARTS = value([np.ones(2), np.full(3, 2.0)], (save_parts, load_parts))
COUNT = value(5)
RATE = value(0.5)


@transform
def lookup(i):
    return float(TABLE[i].sum() + sum(p.sum() for p in PARTS)) * RATE + COUNT


# "Parameters": a description, and use_default=False for one that must be given at load
OFFSET = param("offset", 1, "add this much")
SCALE = param("scale", 2, use_default=False)


@transform
def affine(x):
    return x * SCALE + OFFSET


@transform
class Polynomial2(torch.nn.Module):
    def __init__(self, a, b, pd_save_options=None):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(float(a)))
        self.b = torch.nn.Parameter(torch.tensor(float(b)))
        if pd_save_options is not None:
            self.pd_save_options = pd_save_options

    def forward(self, x):
        return x**self.a + x**self.b


unsaved = Polynomial2(2, 3, pd_save_options={"torch.nn.Module": "no-save"})
with torch.no_grad():
    unsaved.a.fill_(5.0)  # not saved: the loaded layer is as the constructor makes it

CASES = {
    "scripted": (transform(lambda v: torch.tensor(float(v))) >> batch >> scripted >> unbatch, [2]),
    "serialized": (lookup, [0, 1]),
    "params": (affine, [3]),
    "unsaved": (unsaved, [2.0]),
}
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("padl_features")
    return tmp, save_in_subprocess(tmp, SCRIPT)


def _loaded(saved: tuple[Path, Path], params: dict | None = None) -> dict[str, list[str]]:
    return load_in_subprocess(saved[0], saved[1], params)


_PARAMS = {"params": {"scale": 2}}  # mandatory at load


def test_a_scripted_module_loads_with_its_trained_weights(saved) -> None:
    assert _loaded(saved, _PARAMS)["scripted"] == expected_outputs(saved[1])["scripted"]
    assert expected_outputs(saved[1])["scripted"] == ["tensor(10.)"]  # 2**1 + 2**3


def test_custom_serializers_save_with_the_users_functions_and_load_with_them(saved) -> None:
    data = saved[1] / "serialized.padl" / "data"
    assert sorted(p.name for p in data.iterdir()) == ["PARTS_0.npy", "PARTS_1.npy", "TABLE.npy"]
    loaded = _loaded(saved, _PARAMS)["serialized"]
    # (0+1+2 + 2 + 6) * 0.5 + 5 and (3+4+5 + 2 + 6) * 0.5 + 5
    assert loaded == expected_outputs(saved[1])["serialized"] == ["10.5", "15.0"]


def test_numbers_given_to_value_are_saved_as_their_literals(saved) -> None:
    source = (saved[1] / "serialized.padl" / "pipeline.py").read_text()
    assert "COUNT = 5" in source and "RATE = 0.5" in source


def test_a_param_saves_its_description_and_use_default(saved) -> None:
    source = (saved[1] / "params.padl" / "pipeline.py").read_text()
    assert "param('offset', 1, description='add this much')" in source
    assert "param('scale', 2, use_default=False)" in source
    assert _loaded(saved, {"params": {"scale": 10}})["params"] == ["31"]


def test_a_mandatory_param_missing_at_load_is_a_value_error_naming_it(saved) -> None:
    code = (
        "import padlc\n"
        f"try:\n    padlc.load({str(saved[1] / 'params.padl')!r})\n"
        "except ValueError as e:\n    print(e)\n"
    )
    message = run_python(["-c", code], cwd=saved[0])
    assert "needs the parameter scale" in message and "params={'scale': ...}" in message


def test_pd_save_options_no_save_leaves_the_weights_out(saved) -> None:
    assert not (saved[1] / "unsaved.padl" / "weights.safetensors").exists()
    # saved: 2**5 + 2**3; loaded: 2**2 + 2**3, the layer as its constructor makes it
    assert expected_outputs(saved[1])["unsaved"] == ["tensor(40., grad_fn=<AddBackward0>)"]
    assert _loaded(saved, _PARAMS)["unsaved"] == ["tensor(12., grad_fn=<AddBackward0>)"]


def test_pd_save_options_padlc_does_not_know_are_refused(tmp_path: Path) -> None:
    code = (
        "import torch, padlc\n"
        "from padlc import transform\n"
        "layer = transform(torch.nn.Linear)(2, 2)\n"
        "layer.pd_save_options = {'torch.nn.Module': 'nosave'}\n"
        "try:\n"
        f"    padlc.save(layer, {str(tmp_path / 'x')!r})\n"
        "except padlc.SaveError as e:\n    print(e)\n"
    )
    message = run_python(["-c", code], cwd=tmp_path)
    assert "pd_save_options={'torch.nn.Module': 'nosave'}" in message and "'no-save'" in message
    assert not (tmp_path / "x.padl").exists()
