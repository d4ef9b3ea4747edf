"""A compiled forward needs no source: a model instance padlc cannot capture (a custom class whose
head was replaced after construction) builds with every compiled backend; the artifact records it
as compiled-only, has no lineage and no eager forward, and padlc.load and padlc inspect say so.
Slim builds leave the lineage out on purpose."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import padlc
from padl_runtime import read_manifest
from padlc.builder.verify import canonical, compare
from padlc.cli import inspect_text
from tests.e2e import instances_code as code
from tests.e2e.runtime_child import run_in_runtime

COMPILED = ("export", "onnx", "torchscript")
#: where the pipeline wraps the instance: `transform(MODEL)` in instances_code.instance
WHERE = "instances_code.py:" + str(
    next(
        i
        for i, line in enumerate(Path(code.__file__).read_text().splitlines(), 1)
        if "transform(MODEL)" in line
    )
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("instances")
    pipeline = code.instance()
    results = {
        backend: padlc.build(pipeline, root / backend, inputs=code.VECTORS, backend=backend)
        for backend in COMPILED
    }
    results["slim"] = padlc.build(
        code.wide(), root / "slim", inputs=code.VECTORS, backend="export", slim=True
    )
    jobs = {name: (result.path, code.VECTORS, None) for name, result in results.items()}
    expected = {
        name: [canonical(p.infer_apply(x)) for x in code.VECTORS]
        for name, p in (("instance", pipeline), ("slim", code.wide()))
    }
    return {"results": results, "loaded": run_in_runtime(jobs), "expected": expected}


@pytest.mark.parametrize("backend", COMPILED)
def test_a_model_instance_builds_and_matches_the_eager_pipeline(
    built: dict[str, Any], backend: str
) -> None:
    loaded = built["loaded"][backend]
    assert loaded["backend"] == backend
    for mode in ("infer", "eval"):
        _, problem = compare(loaded[mode], built["expected"]["instance"], 1e-4)
        assert problem is None, f"{backend} {mode}_apply: {problem}"


def test_the_manifest_records_the_instance_as_compiled_only(built: dict[str, Any]) -> None:
    manifest = read_manifest(built["results"]["export"].path)
    assert manifest.module == ""
    (entry,) = manifest.compiled_only
    assert entry.transform == "MODEL"
    assert entry.where.endswith(WHERE)
    assert "Cannot save `MODEL` (a Net" in entry.reason
    assert not (built["results"]["export"].path / "pipeline.py").exists()


def test_the_eager_backend_is_unavailable_for_a_compiled_only_forward(tmp_path: Path) -> None:
    with pytest.raises(padlc.BuildError) as info:
        padlc.build(code.instance(), tmp_path / "x", inputs=code.VECTORS, backend="eager")
    message = str(info.value)
    assert "Backend 'eager' cannot build here" in message
    assert f"`MODEL` ({WHERE}) is compiled-only" in message
    assert "Build it with a compiled backend" in message
    assert not (tmp_path / "x.padl").exists()


def test_auto_reports_eager_unavailable_for_a_compiled_only_forward(tmp_path: Path) -> None:
    # the eager backend is tried only when no compiled one builds: here none can
    with pytest.raises(padlc.BuildError) as info:
        padlc.build(
            code.instance(), tmp_path / "x", inputs=code.VECTORS, backend=["torchscript", "eager"]
        )
    assert "eager" in str(info.value) and "compiled-only" in str(info.value)


def test_padlc_load_of_a_compiled_only_artifact_says_what_is_missing(
    built: dict[str, Any],
) -> None:
    with pytest.raises(padlc.ArtifactError) as info:
        padlc.load(built["results"]["export"].path)
    message = str(info.value)
    assert "has no lineage (pipeline.py and its weights)" in message
    assert f"compiled-only: `MODEL` ({WHERE})" in message
    assert "Serve it with padl_runtime.load(path)" in message


def test_inspect_says_the_forward_is_compiled_only(built: dict[str, Any]) -> None:
    text = inspect_text(built["results"]["export"].path)
    assert "lineage: none, padlc.load cannot rebuild this pipeline" in text
    assert "compiled-only: `MODEL`" in text


def test_a_slim_build_serves_without_the_lineage(built: dict[str, Any]) -> None:
    result = built["results"]["slim"]
    for mode in ("infer", "eval"):
        _, problem = compare(built["loaded"]["slim"][mode], built["expected"]["slim"], 1e-4)
        assert problem is None, f"slim {mode}_apply: {problem}"
    assert not (result.path / "pipeline.py").exists()
    assert not (result.path / "weights.safetensors").exists()
    assert read_manifest(result.path).without_lineage.startswith("a serving build")


def test_padlc_load_of_a_slim_artifact_says_how_to_keep_the_lineage(
    built: dict[str, Any],
) -> None:
    with pytest.raises(padlc.ArtifactError, match="without --slim"):
        padlc.load(built["results"]["slim"].path)
