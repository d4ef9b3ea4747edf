"""Every fixture pipeline × every backend available here: build, load with padl_runtime in a
fresh process (padlc blocked), compare with the eager pipeline. Unsupported combinations must
fail with the documented error."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import padlc
from padlc.builder.verify import canonical, compare
from tests.e2e import fixture_code
from tests.e2e.pipelines import FIXTURES, UNEXPORTABLE

BACKENDS = ("export", "torchscript", "onnx", "eager")
REPO = Path(__file__).resolve().parents[2]

# One child process loads every artifact, with padlc made unimportable: a fresh, independent check
# of what the build's own verification saw.
_CHILD = r"""
import json, pickle, sys
class _NoPadlc:
    def find_spec(self, name, path=None, target=None):
        if name == "padlc" or name.startswith("padlc."):
            raise ImportError("padlc must not be imported by padl_runtime or generated code")
sys.meta_path.insert(0, _NoPadlc())
sys.path[:] = json.loads(sys.argv[1])
import importlib.util
_spec = importlib.util.spec_from_file_location("verify_child", sys.argv[2])  # not padlc: a file
_child = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_child)
canonical = _child.canonical
import padl_runtime
jobs = pickle.load(open(sys.argv[3], "rb"))
out = {}
for key, (path, inputs) in jobs.items():
    p = padl_runtime.load(path)
    out[key] = {
        "backend": p.backend.name,
        "infer": [canonical(p.infer_apply(x)) for x in inputs],
        "eval": [canonical(y) for y in p.eval_apply(inputs, batch_size=2, flatten=True)],
    }
out["padlc_imported"] = any(m.split(".")[0] == "padlc" for m in sys.modules)
pickle.dump(out, open(sys.argv[4], "wb"))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Build every (fixture, backend); run all artifacts in one padl_runtime-only process."""
    from padlc.builder import verify

    root = tmp_path_factory.mktemp("matrix")
    results: dict[str, Any] = {}
    jobs: dict[str, Any] = {}
    expected: dict[str, Any] = {}
    for fixture in FIXTURES:
        pipeline = fixture.make()
        expected[fixture.name] = {
            "infer": [canonical(pipeline.infer_apply(x)) for x in fixture.inputs],
            "eval": [
                canonical(y)
                for y in pipeline.eval_apply(fixture.inputs, batch_size=2, flatten=True)
            ],
        }
        for backend in BACKENDS:
            key = f"{fixture.name}-{backend}"
            try:
                # verify=False: this fixture checks every artifact itself, in one process (below).
                results[key] = padlc.build(
                    pipeline,
                    root / f"{key}.padl",
                    inputs=fixture.inputs,
                    backend=backend,
                    verify=False,
                )
                jobs[key] = (str(results[key].path), list(fixture.inputs))
            except padlc.PadlcError as exc:
                results[key] = exc
    data, out = root / "jobs.pkl", root / "out.pkl"
    data.write_bytes(pickle.dumps(jobs))
    source = verify.verify_child.__file__
    process = subprocess.run(
        [sys.executable, "-I", "-B", "-c", _CHILD, json.dumps(sys.path), source, str(data), str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert process.returncode == 0, process.stderr[-3000:]
    return {"results": results, "loaded": pickle.loads(out.read_bytes()), "expected": expected}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.name)
def test_built_artifact_matches_eager_pipeline(
    built: dict[str, Any], fixture: Any, backend: str
) -> None:
    key = f"{fixture.name}-{backend}"
    result = built["results"][key]
    assert not isinstance(result, Exception), f"{key} failed to build: {result}"
    assert result.backend == backend
    loaded = built["loaded"][key]
    assert loaded["backend"] == backend
    for mode in ("infer", "eval"):
        _, problem = compare(loaded[mode], built["expected"][fixture.name][mode], 1e-4)
        assert problem is None, f"{key} {mode}_apply: {problem}"


def test_runtime_process_never_imported_padlc(built: dict[str, Any]) -> None:
    assert built["loaded"]["padlc_imported"] is False


def test_stage_boundary_move_is_recorded_in_the_manifest(built: dict[str, Any]) -> None:
    from padl_runtime import read_manifest

    manifest = read_manifest(built["results"]["image-export"].path)
    assert manifest.forward is not None
    assert manifest.forward.moved_to_forward == (
        "same.float()",
        "same.div(255.0)",
        "same.permute(2, 0, 1)",
    )
    assert manifest.forward.inputs[0]["dtype"] == "uint8"  # collated before the conversion


def test_an_export_keeps_eager_inferences_fused_transformer_kernels_and_says_so(
    built: dict[str, Any],
) -> None:
    from padl_runtime import read_manifest

    manifest = read_manifest(built["results"]["transformer-export"].path)
    assert manifest.forward is not None
    entry = manifest.forward.backend("export")
    assert entry is not None
    assert "2 TransformerEncoderLayer" in entry.note


def test_torchscript_deprecation_is_reported_once_in_the_build_output(
    built: dict[str, Any],
) -> None:
    result = built["results"]["text-torchscript"]
    assert sum("deprecated" in note for note in result.notes) == 1


def test_unexportable_forward_names_the_transform_its_line_and_torchscript(tmp_path: Path) -> None:
    with pytest.raises(padlc.LoweringError) as info:
        padlc.build(
            UNEXPORTABLE.make(), tmp_path / "x.padl", inputs=UNEXPORTABLE.inputs, backend="export"
        )
    message = str(info.value)
    assert "`data_dependent`" in message
    line = fixture_code.data_dependent.__code__.co_firstlineno
    assert f"fixture_code.py:{line}" in message
    assert f"at fixture_code.py:{line + 1} `if x.sum() > 0:" in message  # the offending line
    assert "What to do: build with --backend torchscript" in message
    assert not (tmp_path / "x.padl").exists()


def test_auto_reports_why_export_failed_and_what_it_took(tmp_path: Path) -> None:
    result = padlc.build(UNEXPORTABLE.make(), tmp_path / "x.padl", inputs=UNEXPORTABLE.inputs)
    outcomes = dict(result.attempts)
    assert "data_dependent" in outcomes["export"]
    assert result.backend in ("torchscript", "eager")
    assert "verified" in outcomes[result.backend]
