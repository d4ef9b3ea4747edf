"""Artifacts no larger than they must be: the export and onnx forwards read the lineage's weights
file instead of holding a copy; `auto` builds every compiled backend, keeps the fastest verified
one and says why."""

from __future__ import annotations

import json
from typing import Any

import pytest

import padlc
from padl_runtime import read_manifest
from padlc.builder.verify import canonical, compare
from padlc.cli import inspect_text
from tests.e2e import instances_code as code
from tests.e2e.runtime_child import run_in_runtime

SHARING = ("export", "onnx")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("weights")
    pipeline = code.wide()
    results = {
        "both": padlc.build(pipeline, root / "both", inputs=code.VECTORS, backend=list(SHARING)),
        "auto": padlc.build(pipeline, root / "auto", inputs=code.VECTORS),
    }
    jobs = {b: (results["both"].path, code.VECTORS, b) for b in SHARING}
    jobs["auto"] = (results["auto"].path, code.VECTORS, None)
    expected = [canonical(pipeline.infer_apply(x)) for x in code.VECTORS]
    return {"results": results, "loaded": run_in_runtime(jobs), "expected": expected}


@pytest.mark.parametrize("backend", SHARING)
def test_a_forward_reading_the_lineages_weights_matches_the_eager_pipeline(
    built: dict[str, Any], backend: str
) -> None:
    loaded = built["loaded"][backend]
    assert loaded["backend"] == backend
    for mode in ("infer", "eval"):
        _, problem = compare(loaded[mode], built["expected"], 1e-4)
        assert problem is None, f"{backend} {mode}_apply: {problem}"


@pytest.mark.parametrize("backend", SHARING)
def test_the_forward_file_holds_no_copy_of_the_weights(built: dict[str, Any], backend: str) -> None:
    root = built["results"]["both"].path
    entry = read_manifest(root).forward.backend(backend)  # type: ignore[union-attr]
    weights = (root / "weights.safetensors").stat().st_size
    forward = (root / entry.files[0]).stat().st_size
    assert weights > 250_000  # 256x256 float32 and more
    assert forward < weights / 4, f"{entry.files[0]}: {forward} bytes for {weights} of weights"
    shared = json.loads((root / entry.weights).read_text())
    assert shared["file"] == "weights.safetensors"
    assert len(shared["tensors"]) == 6  # three Linear layers: weight and bias each


def test_the_artifact_is_the_size_of_its_weights_and_a_little_code(
    built: dict[str, Any],
) -> None:
    root = built["results"]["both"].path
    total = sum(entry.size for entry in read_manifest(root).files)
    assert total < 1.15 * (root / "weights.safetensors").stat().st_size + 200_000


def test_inspect_reports_sizes_and_the_shared_weights(built: dict[str, Any]) -> None:
    text = inspect_text(built["results"]["both"].path)
    assert "reads its weights from weights.safetensors (6 tensors)" in text
    assert "lineage: pipeline.py, weights.safetensors (" in text
    assert "backend export: forward/forward.pt2, forward/forward.pt2.weights.json (" in text


def test_auto_tries_every_compiled_backend_and_says_why_it_chose(built: dict[str, Any]) -> None:
    result = built["results"]["auto"]
    outcomes = dict(result.attempts)
    assert set(outcomes) == {"export", "onnx", "torchscript"}
    assert all(o.startswith("verified") and "infer_apply" in o for o in outcomes.values())
    (why,) = [note for note in result.notes if note.startswith("auto chose ")]
    assert why.startswith(f"auto chose {result.backend}: the fastest verified forward here")
    assert result.backends == (result.backend,)  # the others' files are gone
    manifest = read_manifest(result.path)
    kept = set(manifest.forward.backends[0].files)  # type: ignore[union-attr]
    forwards = {e.path for e in manifest.files if e.path.startswith("forward/forward.")}
    assert forwards == kept
    assert built["loaded"]["auto"]["backend"] == result.backend


def test_auto_reports_the_notes_of_the_backend_it_kept_only(built: dict[str, Any]) -> None:
    result = built["results"]["auto"]
    backends = {"export", "onnx", "torchscript", "aoti", "eager"}
    named = {note.split(":", 1)[0] for note in result.notes} & backends
    assert named <= {result.backend}, result.notes
