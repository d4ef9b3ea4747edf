"""One artifact holding several forward backends: each verified, the runtime picks the first usable
one or the one asked for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import padl_runtime
import padlc
from padl_runtime.manifest import read_manifest
from tests.e2e.pipelines import FIXTURES

FIXTURE = {f.name: f for f in FIXTURES}["two_outputs"]


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> padlc.BuildResult:
    pytest.importorskip("onnxruntime")
    target = tmp_path_factory.mktemp("multi") / "multi.padl"
    return padlc.build(
        FIXTURE.make(), target, inputs=FIXTURE.inputs, backend=["export", "onnx", "torchscript"]
    )


def test_every_requested_backend_is_kept_in_order(multi: padlc.BuildResult) -> None:
    manifest = read_manifest(multi.path)
    assert manifest.forward is not None
    assert [b.name for b in manifest.forward.backends] == ["export", "onnx", "torchscript"]
    assert multi.backends == ("export", "onnx", "torchscript")
    assert all(b.max_abs_error is not None for b in manifest.forward.backends)


def test_runtime_prefers_the_first_backend(multi: padlc.BuildResult) -> None:
    assert padl_runtime.load(multi.path).backend.name == "export"


@pytest.mark.parametrize("name", ["export", "onnx", "torchscript"])
def test_runtime_loads_the_backend_asked_for(multi: padlc.BuildResult, name: str) -> None:
    pipeline = padl_runtime.load(multi.path, backend=name)
    assert pipeline.backend.name == name
    expected = FIXTURE.make()  # same seed: same weights as the built pipeline
    for item in FIXTURE.inputs:
        out, want = pipeline.infer_apply(item), expected.infer_apply(item)
        assert [float(a) for a in _leaves(out)] == pytest.approx(
            [float(b) for b in _leaves(want)], abs=1e-4
        )


def test_cli_takes_a_comma_separated_backend_list(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "padlc", "build", "tests.e2e.test_build_backends:PIPELINE",
            "-o", str(tmp_path / "cli.padl"), "--inputs", "tests.e2e.test_build_backends:INPUTS",
            "--backend", "eager,torchscript",
        ],
        capture_output=True, text=True, check=False, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = read_manifest(tmp_path / "cli.padl")
    assert manifest.forward is not None
    assert [b.name for b in manifest.forward.backends] == ["eager", "torchscript"]


def test_cli_rejects_an_unknown_backend_name(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "padlc", "build", "tests.e2e.test_build_backends:PIPELINE",
            "-o", str(tmp_path / "x.padl"), "--inputs", "tests.e2e.test_build_backends:INPUTS",
            "--backend", "export,tensorrt",
        ],
        capture_output=True, text=True, check=False, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert result.returncode == 2
    assert "unknown backend 'tensorrt'" in result.stderr
    assert not (tmp_path / "x.padl").exists()


def _leaves(value: object) -> list[object]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, tuple | list):
        return [leaf for v in value for leaf in _leaves(v)]
    if hasattr(value, "flatten"):
        return list(value.flatten().tolist())  # type: ignore[attr-defined]
    return [value]


PIPELINE = FIXTURE.make()
INPUTS = FIXTURE.inputs
