"""The actor side of ``padl_runtime.ray.predict`` in this process (no Ray cluster): a batch of rows
(a pyarrow table) in, the same rows with the pipeline's outputs out, stored as Ray Data stores
values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

import padl_runtime
import padlc
from padl_runtime.ray._loading import ArtifactRef
from padl_runtime.ray.data import Predictor
from padlc import batch, transform, unbatch
from tests.e2e.serve_code import ITEMS, make_pipeline, parse

# Ray's own modules warn about Ray's own deprecated settings; warnings from padl stay errors
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Outputs ``{"label": int, "scores": tensor}``."""
    target = tmp_path_factory.mktemp("predictor") / "answers.padl"
    return padlc.build(make_pipeline(), target, inputs=ITEMS[:4], backend="export").path


@pytest.fixture(scope="module")
def tensors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Outputs a float tensor of shape [3] (no postprocess)."""
    torch.manual_seed(0)
    pipeline = parse >> batch >> transform(torch.nn.Linear(4, 3)) >> unbatch
    target = tmp_path_factory.mktemp("predictor") / "tensors.padl"
    return padlc.build(pipeline, target, inputs=ITEMS[:4], backend="export").path


def _predictor(path: Path, batch_size: int = 4, error_column: str | None = None) -> Predictor:
    artifact = ArtifactRef.prepare(path, {})
    return Predictor(artifact, "item", "output", error_column, batch_size)


def test_tensor_outputs_become_a_tensor_column_of_numpy_arrays(tensors) -> None:
    rows = _predictor(tensors)(pa.table({"item": ITEMS[:6]})).to_pylist()
    pipeline = padl_runtime.load(tensors)
    for row, item in zip(rows, ITEMS[:6], strict=True):
        assert np.allclose(np.asarray(row["output"]), pipeline.infer_apply(item).numpy(), atol=1e-6)


def test_dict_outputs_become_structs_with_tensors_as_lists(answers) -> None:
    table = _predictor(answers)(pa.table({"item": ITEMS[:3], "id": [7, 8, 9]}))
    assert table.column_names == ["item", "id", "output"]
    pipeline = padl_runtime.load(answers)
    for row, item in zip(table.to_pylist(), ITEMS[:3], strict=True):
        want = pipeline.infer_apply(item)
        assert row["output"]["label"] == want["label"]
        assert torch.allclose(torch.tensor(row["output"]["scores"]), want["scores"], atol=1e-6)


def test_an_actor_runs_one_forward_per_batch_size_rows(answers, monkeypatch) -> None:
    predictor = _predictor(answers, batch_size=4)
    sizes: list[int] = []
    apply_batch = predictor.pipeline.apply_batch

    def counting(items, **options):
        sizes.append(len(items))
        return apply_batch(items, **options)

    monkeypatch.setattr(predictor.pipeline, "apply_batch", counting)
    predictor(pa.table({"item": ITEMS[:10]}))
    assert sizes == [4, 4, 2]


def test_with_an_error_column_a_failing_row_gets_none_and_its_failure(answers) -> None:
    items = [ITEMS[0], [999.0, 0.0, 0.0, 0.0], ITEMS[1]]
    rows = _predictor(answers, error_column="error")(pa.table({"item": items})).to_pylist()
    assert [r["error"] is None for r in rows] == [True, False, True]
    assert rows[1]["output"] is None
    assert "parse" in rows[1]["error"] and "this item asks to fail" in rows[1]["error"]


def test_an_existing_output_column_is_not_overwritten(answers) -> None:
    with pytest.raises(ValueError, match="already has a column 'output'"):
        _predictor(answers)(pa.table({"item": ITEMS[:2], "output": [1, 2]}))


def test_load_options_other_than_loads_are_refused_on_the_driver(answers) -> None:
    with pytest.raises(TypeError, match=r"Unknown load option.*batchsize"):
        ArtifactRef.prepare(answers, {"batchsize": 3})


def test_a_batch_larger_than_the_artifact_accepts_is_refused_on_the_driver(tmp_path) -> None:
    target = tmp_path / "small.padl"
    path = padlc.build(make_pipeline(), target, inputs=ITEMS[:4], backend="export", max_batch=8)
    artifact = ArtifactRef.prepare(path.path, {})
    with pytest.raises(ValueError, match="built with max_batch=8"):
        artifact.check_batch(16, "batch_size")
