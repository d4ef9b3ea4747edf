"""The errors `padlc build` promises, the no-batch fallback, the move switch, and the runtime's refusals."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import padl_runtime
import padlc
from padl_runtime.manifest import encode_manifest, read_manifest
from tests.e2e.pipelines import FIXTURES, NO_BATCH, UNEXPORTABLE, VECTORS

BY_NAME = {f.name: f for f in FIXTURES}
REPO = Path(__file__).resolve().parents[2]


def test_pipeline_without_batch_says_so_and_builds_eager(tmp_path: Path) -> None:
    result = padlc.build(
        NO_BATCH.make(), tmp_path / "nb.padl", inputs=NO_BATCH.inputs, backend="export"
    )
    assert result.backend == "eager"
    assert any("no `batch` marker" in note for note in result.notes)
    pipeline = padl_runtime.load(result.path)
    expected = NO_BATCH.make().infer_apply(NO_BATCH.inputs[0])
    assert torch.allclose(pipeline.infer_apply(NO_BATCH.inputs[0]), expected)


def test_example_that_fails_preprocessing_is_named(tmp_path: Path) -> None:
    fixture = BY_NAME["two_outputs"]
    with pytest.raises(
        padlc.BuildError, match=r"Example input 1 \('not a list'\) fails in preprocessing"
    ):
        padlc.build(fixture.make(), tmp_path / "x.padl", inputs=[[1.0, 2, 3, 4], "not a list"])


def test_fewer_than_two_examples_are_refused(tmp_path: Path) -> None:
    fixture = BY_NAME["two_outputs"]
    with pytest.raises(padlc.BuildError, match="at least 2"):
        padlc.build(fixture.make(), tmp_path / "x.padl", inputs=fixture.inputs[:1])


def test_existing_target_is_refused_without_force(tmp_path: Path) -> None:
    fixture = BY_NAME["no_postprocess"]
    target = tmp_path / "x.padl"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(padlc.BuildError, match=r"already exists.*force"):
        padlc.build(fixture.make(), target, inputs=fixture.inputs, backend="eager")
    assert (target / "keep.txt").read_text() == "mine"
    padlc.build(
        fixture.make(), target, inputs=fixture.inputs, backend="eager", force_overwrite=True
    )
    assert not (target / "keep.txt").exists()


def test_a_plain_layer_is_refused_saying_how_to_make_a_pipeline(tmp_path: Path) -> None:
    with pytest.raises(padlc.BuildError, match=r"needs a padlc pipeline.*transform\(layer\)"):
        padlc.build(torch.nn.Linear(4, 2), tmp_path / "x.padl", inputs=list(VECTORS))


def test_inputs_that_are_not_a_list_are_refused(tmp_path: Path) -> None:
    fixture = BY_NAME["no_postprocess"]
    with pytest.raises(padlc.BuildError, match=r"inputs must be a list .*got int 5"):
        padlc.build(fixture.make(), tmp_path / "x.padl", inputs=5)


def test_an_unknown_device_is_refused(tmp_path: Path) -> None:
    fixture = BY_NAME["no_postprocess"]
    with pytest.raises(padlc.BuildError, match=r"Unknown device 'gpu'.*'cuda'"):
        padlc.build(fixture.make(), tmp_path / "x.padl", inputs=fixture.inputs, device="gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_refused(tmp_path: Path) -> None:
    fixture = BY_NAME["no_postprocess"]
    with pytest.raises(padlc.BuildError, match=r"Cannot build on device 'cuda'.*--device cpu"):
        padlc.build(fixture.make(), tmp_path / "x.padl", inputs=fixture.inputs, device="cuda")


def test_max_batch_below_two_is_refused(tmp_path: Path) -> None:
    fixture = BY_NAME["no_postprocess"]
    with pytest.raises(padlc.BuildError, match="max_batch must be an integer of at least 2, got 1"):
        padlc.build(fixture.make(), tmp_path / "x.padl", inputs=fixture.inputs, max_batch=1)


def test_more_examples_than_max_batch_are_traced_and_verified_in_batches(tmp_path: Path) -> None:
    fixture = BY_NAME["no_postprocess"]
    inputs = [[float(i), 1.0, -1.0, 0.5] for i in range(5)]
    result = padlc.build(
        fixture.make(), tmp_path / "x.padl", inputs=inputs, backend="export", max_batch=2
    )
    assert "verified" in dict(result.attempts)["export"]


def test_a_target_whose_parent_is_a_file_is_a_build_error(tmp_path: Path) -> None:
    fixture = BY_NAME["no_postprocess"]
    (tmp_path / "afile").write_text("x")
    with pytest.raises(padlc.BuildError, match=r"is a file, not a directory.*another path"):
        padlc.build(fixture.make(), tmp_path / "afile" / "x.padl", inputs=fixture.inputs)


def test_a_target_the_system_cannot_write_is_a_build_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(*args: object, **kwargs: object) -> str:
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path))

    monkeypatch.setattr("padlc.artifact.writer.tempfile.mkdtemp", read_only)
    fixture = BY_NAME["no_postprocess"]
    with pytest.raises(padlc.BuildError, match=r"x\.padl: Read-only file system\. Choose"):
        padlc.build(fixture.make(), tmp_path / "x.padl", inputs=fixture.inputs)


def test_the_reported_path_is_normalised(tmp_path: Path) -> None:
    fixture = BY_NAME["no_postprocess"]
    (tmp_path / "src").mkdir()
    result = padlc.build(
        fixture.make(), tmp_path / "src" / ".." / "x.padl", inputs=fixture.inputs, verify=False
    )
    assert result.report().startswith(f"built {tmp_path / 'x.padl'} ")


def test_the_log_names_the_path_written_with_its_suffix(tmp_path: Path) -> None:
    fixture = BY_NAME["no_postprocess"]
    messages: list[str] = []
    padlc.build(
        fixture.make(), tmp_path / "plain", inputs=fixture.inputs, verify=False, log=messages.append
    )
    assert (
        messages[0]
        == f"writing {tmp_path / 'plain.padl'} (the .padl suffix added to the path given)"
    )


def test_a_forward_without_batched_tensors_is_reported_in_plain_sentences(tmp_path: Path) -> None:
    pipeline = padlc.transform(torch.tensor) >> padlc.batch >> padlc.transform(len) >> padlc.unbatch
    with pytest.raises(padlc.BuildError, match="from the forward stage") as info:
        padlc.build(pipeline, tmp_path / "x.padl", inputs=[[1.0], [2.0]])
    assert ".." not in str(info.value)


@pytest.fixture(scope="module")
def onnx_error(tmp_path_factory: pytest.TempPathFactory) -> padlc.LoweringError:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    target = tmp_path_factory.mktemp("onnx") / "x.padl"
    with pytest.raises(padlc.LoweringError) as info:
        padlc.build(UNEXPORTABLE.make(), target, inputs=UNEXPORTABLE.inputs, backend="onnx")
    return info.value


def test_onnx_error_names_the_underlying_cause(onnx_error: padlc.LoweringError) -> None:
    assert "GuardOnDataDependentSymNode: Could not guard on data-dependent" in str(onnx_error)


def test_onnx_error_has_no_terminal_colour_codes(onnx_error: padlc.LoweringError) -> None:
    assert "\x1b" not in str(onnx_error)


def test_torch_output_of_a_failed_attempt_stays_out_of_the_build_output(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    padlc.build(UNEXPORTABLE.make(), tmp_path / "x.padl", inputs=UNEXPORTABLE.inputs)
    assert "def forward" not in capfd.readouterr().err


def test_torch_output_and_error_of_a_failed_attempt_are_kept_on_the_error(tmp_path: Path) -> None:
    with pytest.raises(padlc.LoweringError) as info:
        padlc.build(
            UNEXPORTABLE.make(), tmp_path / "x.padl", inputs=UNEXPORTABLE.inputs, backend="export"
        )
    error = info.value
    assert error.torch_output.startswith("torch's output while lowering with export:")
    assert error.torch_error is not None and error.torch_error.__traceback__ is not None
    assert error.__cause__ is None and not getattr(error, "__notes__", [])


def test_an_uncaught_lowering_error_prints_padlcs_message_without_torchs_traceback(
    tmp_path: Path,
) -> None:
    script = tmp_path / "build.py"
    script.write_text(
        "import padlc\n"
        "from tests.e2e.pipelines import UNEXPORTABLE\n"
        "padlc.build(UNEXPORTABLE.make(), 'x', inputs=UNEXPORTABLE.inputs, backend='export')\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert "padlc.errors.LoweringError: Cannot compile the forward stage" in result.stderr
    assert "torch/export" not in result.stderr and "def forward" not in result.stderr
    assert len(lines) < 20, result.stderr


def test_move_to_forward_equals_the_unoptimised_build(tmp_path: Path) -> None:
    fixture = BY_NAME["image"]
    moved = padlc.build(
        fixture.make(), tmp_path / "a.padl", inputs=fixture.inputs, backend="export"
    )
    kept = padlc.build(
        fixture.make(),
        tmp_path / "b.padl",
        inputs=fixture.inputs,
        backend="export",
        move_to_forward=False,
    )
    assert moved.moved_to_forward and not kept.moved_to_forward
    assert read_manifest(kept.path).forward.inputs[0]["dtype"] == "float32"
    a, b = padl_runtime.load(moved.path), padl_runtime.load(kept.path)
    for x in (*fixture.inputs, 7, 8):
        assert abs(a.infer_apply(x) - b.infer_apply(x)) <= 1e-6


def test_stage_module_is_straight_line_code_without_padlc(tmp_path: Path) -> None:
    fixture = BY_NAME["dict_output"]
    result = padlc.build(
        fixture.make(), tmp_path / "d.padl", inputs=fixture.inputs, backend="eager"
    )
    source = (result.path / "stages.py").read_text()
    assert "padlc" not in source.split('"""', 2)[2]  # only the header mentions it
    assert "def preprocess(x):" in source and "def postprocess(x):" in source
    assert "Generated by padlc" in source


def test_traceback_through_generated_code_shows_the_generated_line(tmp_path: Path) -> None:
    fixture = BY_NAME["text"]
    result = padlc.build(
        fixture.make(), tmp_path / "t.padl", inputs=fixture.inputs, backend="eager"
    )
    pipeline = padl_runtime.load(result.path)
    with pytest.raises(AttributeError) as info:
        pipeline.infer_apply(42)  # not a string
    text = "".join(__import__("traceback").format_tb(info.value.__traceback__))
    assert "stages.py" in text and "x = tokenize(x)" in text


def test_runtime_refuses_aoti_for_another_arch_and_falls_back_with_a_warning(
    tmp_path: Path,
) -> None:
    fixture = BY_NAME["no_postprocess"]
    result = padlc.build(
        fixture.make(), tmp_path / "a.padl", inputs=fixture.inputs, backend="export"
    )
    manifest_path = result.path / "manifest.json"
    data = json.loads(manifest_path.read_text())
    export_entry = data["forward"]["backends"][0]
    fake = {**export_entry, "name": "aoti", "arch": "cuda-sm90"}
    data["forward"]["backends"] = [fake, export_entry]
    manifest_path.write_text(encode_manifest(data))
    with pytest.warns(RuntimeWarning, match="compiled for cuda-sm90"):
        pipeline = padl_runtime.load(result.path, trust_code=True)
    assert pipeline.backend.name == "export"
    data["forward"]["backends"] = [fake]
    manifest_path.write_text(encode_manifest(data))
    with pytest.raises(padl_runtime.BackendUnavailableError, match="cuda-sm90"):
        padl_runtime.load(result.path, trust_code=True)
    with pytest.raises(padl_runtime.BackendUnavailableError, match="has no 'onnx' forward"):
        padl_runtime.load(result.path, backend="onnx")


def test_runtime_checks_hashes_before_running_code(tmp_path: Path) -> None:
    fixture = BY_NAME["no_postprocess"]
    result = padlc.build(
        fixture.make(), tmp_path / "h.padl", inputs=fixture.inputs, backend="eager"
    )
    with open(result.path / "stages.py", "a") as handle:
        handle.write("raise SystemExit('executed')\n")
    with pytest.raises(padl_runtime.ArtifactError, match=r"stages\.py"):
        padl_runtime.load(result.path)


def test_padl_runtime_never_imports_padlc() -> None:
    code = (
        "import sys, padl_runtime, padl_runtime.load, padl_runtime.pipeline, padl_runtime.backends, "
        "padl_runtime.treespec, padl_runtime.package\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'padlc'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_build_and_inspect(tmp_path: Path) -> None:
    module = tmp_path / "mymodel.py"
    module.write_text(
        "from padlc import transform, batch, unbatch, same\n"
        "from tests.e2e import fixture_code as code\n"
        "import torch\n"
        "torch.manual_seed(0)\n"
        "pipeline = transform(code.to_tensor) >> same.mul(2.0) >> batch >> transform(torch.nn).Linear(4, 2) >> unbatch >> same.argmax()\n"
        "examples = [[1.0, 2, 3, 4], [0.0, 1, 0, 1]]\n"
    )
    target = tmp_path / "cli.padl"
    env_path = ":".join(sys.path)
    build = subprocess.run(
        [sys.executable, "-m", "padlc", "build", f"{module}:pipeline", "-o", str(target), "--inputs",
         f"{module}:examples", "--backend", "torchscript"],
        capture_output=True, text=True, check=False, env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    assert "with backend 'torchscript'" in build.stdout
    assert build.stdout.count("deprecated") == 1
    again = subprocess.run(
        [sys.executable, "-m", "padlc", "build", f"{module}:pipeline", "-o", str(target), "--inputs", f"{module}:examples"],
        capture_output=True, text=True, check=False, env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert again.returncode == 1 and "already exists" in again.stderr
    inspect = subprocess.run(
        [sys.executable, "-m", "padlc", "inspect", str(target)], capture_output=True, text=True, check=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    for expected in ("backend torchscript", "moved to forward (stage-boundary optimisation): same.mul(2.0)",
                     "stages.py", "forward/graph.py", "C++: forward (forward/forward.ts)", "requirements:"):  # fmt: skip
        assert expected in inspect.stdout, inspect.stdout
