"""What padl_runtime refuses instead of computing garbage or quietly doing something else: inputs
of a shape the compiled forward was not built for, batches above max_batch, a device or backend it
cannot give."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import padl_runtime
import padlc
from padl_runtime.manifest import encode_manifest
from tests.e2e import shape_code


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("checks") / "rows.padl"
    return padlc.build(
        shape_code.pipeline, target, inputs=shape_code.examples, backend="export", max_batch=4
    ).path


def test_an_item_of_the_built_shape_gives_the_eager_result(built: Path) -> None:
    item = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    got = padl_runtime.load(built).infer_apply(item)
    assert torch.allclose(got, shape_code.pipeline.infer_apply(item))


def test_an_item_of_another_shape_is_refused_naming_both_shapes(built: Path) -> None:
    pipeline = padl_runtime.load(built)
    with pytest.raises(
        ValueError, match=r"input_0 as float32 of shape \[batch, 3, 2\].*has float32 \[1, 5, 2\]"
    ):
        pipeline.infer_apply([[1.0, 2.0]] * 5)


def test_a_batch_of_another_dtype_is_refused(built: Path) -> None:
    pipeline = padl_runtime.load(built)
    with pytest.raises(ValueError, match=r"as float32 .* has float64 \[2, 3, 2\]"):
        pipeline.forward(torch.ones(2, 3, 2, dtype=torch.float64))


def test_eval_apply_refuses_a_batch_size_above_max_batch(built: Path) -> None:
    pipeline = padl_runtime.load(built)
    with pytest.raises(ValueError, match="built with max_batch=4"):
        pipeline.eval_apply([[[1.0, 2.0]] * 3] * 6, batch_size=8)


def test_a_batch_above_max_batch_is_refused_by_the_forward(built: Path) -> None:
    pipeline = padl_runtime.load(built)
    with pytest.raises(ValueError, match=r"A batch of 6 items .* max_batch=4"):
        pipeline.forward(torch.ones(6, 3, 2))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_loading_on_cuda_without_cuda_is_a_backend_error(built: Path) -> None:
    with pytest.raises(padl_runtime.BackendUnavailableError, match="CUDA is not available"):
        padl_runtime.load(built, device="cuda")


def test_a_backend_asked_for_by_name_is_never_replaced(built: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(built, tmp_path / "copy.padl"))
    manifest = json.loads((copy / "manifest.json").read_text())
    export = manifest["forward"]["backends"][0]
    manifest["forward"]["backends"] = [export, {**export, "name": "aoti", "arch": "cuda-sm90"}]
    (copy / "manifest.json").write_text(encode_manifest(manifest))
    with pytest.raises(padl_runtime.BackendUnavailableError, match="cuda-sm90"):
        padl_runtime.load(copy, backend="aoti")


def test_an_unknown_backend_name_is_named_as_such(built: Path) -> None:
    with pytest.raises(padl_runtime.BackendUnavailableError, match="'tensorrt' is not a backend"):
        padl_runtime.load(built, backend="tensorrt")
