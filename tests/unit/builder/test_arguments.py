"""What ``padlc.build`` and ``padlc.load`` are given, checked before any work, naming the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import padlc
from padlc import batch, transform, unbatch

PIPELINE = transform(torch.tensor) >> batch >> transform(torch.nn.Linear)(2, 2) >> unbatch
INPUTS = [[1.0, 2.0], [3.0, 4.0]]


def test_a_misspelt_backend_is_a_build_error_naming_the_closest(tmp_path: Path) -> None:
    with pytest.raises(padlc.BuildError, match=r"Unknown backend 'exprot'\. Did you mean 'export'"):
        padlc.build(PIPELINE, tmp_path / "x", inputs=INPUTS, backend="exprot")
    assert not (tmp_path / "x.padl").exists()


def test_a_misspelt_backend_in_a_list_is_named(tmp_path: Path) -> None:
    with pytest.raises(padlc.BuildError, match=r"'torchscipt'\. Did you mean 'torchscript'"):
        padlc.build(PIPELINE, tmp_path / "x", inputs=INPUTS, backend=["export", "torchscipt"])


def test_a_backend_that_is_not_a_name_is_a_build_error(tmp_path: Path) -> None:
    with pytest.raises(padlc.BuildError, match=r"backend must be a backend's name.*got 7"):
        padlc.build(PIPELINE, tmp_path / "x", inputs=INPUTS, backend=7)  # type: ignore[arg-type]


def test_a_misspelt_build_option_names_the_closest(tmp_path: Path) -> None:
    with pytest.raises(
        TypeError, match=r"build\(\) got .*'max_batchsize' \(did you mean 'max_batch'"
    ):
        padlc.build(PIPELINE, tmp_path / "x", inputs=INPUTS, max_batchsize=8)  # type: ignore[call-arg]


def test_load_params_given_as_keywords_say_to_pass_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"params=\{'threshold': 0.9\}"):
        padlc.load(tmp_path / "x.padl", threshold=0.9)  # type: ignore[call-arg]


def test_load_params_that_are_not_a_mapping_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="params must be a mapping"):
        padlc.load(tmp_path / "x.padl", params=[("threshold", 0.9)])  # type: ignore[arg-type]
