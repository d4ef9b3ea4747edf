"""The C++ runtime (runtime/cpp) runs artifacts built by `padlc build` and computes what padl_runtime computes.

A session fixture builds the CMake project once into runtime/cpp/build/pytest-<key>, where the key
hashes the C++ sources, the torch version and the compiler, so a stale build is rebuilt and an
unchanged one is reused across test runs (about 25 s from scratch on a 2-core machine). Artifacts
are built the way users build them, with `python -m padlc build ... --backend torchscript` (and
`padlc demo`), once per module; tests that damage an artifact work on a copy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import platform
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import padl_runtime
from padl_runtime.collate import collate
from padl_runtime.manifest import BackendEntry, encode_manifest, file_entry, read_manifest
from padlc import batch, same, transform, unbatch
from tests.e2e import fixture_code as code

REPO = Path(__file__).resolve().parents[2]
CPP_DIR = REPO / "runtime" / "cpp"
CPP_SOURCES = ("CMakeLists.txt", "include", "src", "examples", "tests", "third_party")
N_CLASSES, BATCH = 5, 8


def _cxx_compiler() -> str | None:
    candidates = [os.environ.get("CXX", ""), "c++", "g++", "clang++"]
    return next((shutil.which(c) for c in candidates if c and shutil.which(c)), None)


pytestmark = pytest.mark.skipif(
    shutil.which("cmake") is None or _cxx_compiler() is None,
    reason="the C++ runtime tests need cmake and a C++ compiler on PATH",
)


# -- building the C++ project ---------------------------------------------------------------------
def _build_key() -> str:
    digest = hashlib.sha256()
    for name in CPP_SOURCES:
        top = CPP_DIR / name
        for path in sorted([top] if top.is_file() else top.rglob("*")):
            if path.is_file():
                digest.update(path.relative_to(CPP_DIR).as_posix().encode() + b"\0")
                digest.update(path.read_bytes())
    digest.update(
        f"{torch.__version__}\0{torch.utils.cmake_prefix_path}\0{_cxx_compiler()}".encode()
    )
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Serialise builds between concurrent pytest sessions sharing the checkout."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check(command: Sequence[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(
            f"{what} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )


@pytest.fixture(scope="session")
def cpp_build() -> Path:
    key = _build_key()
    build_root = CPP_DIR / "build"
    build = build_root / f"pytest-{key}"
    stamp = build / "padl-build.stamp"
    with _exclusive(build_root / "pytest.lock"):
        if not (stamp.is_file() and stamp.read_text() == key):
            for stale in build_root.glob("pytest-*"):
                if stale != build:
                    shutil.rmtree(stale, ignore_errors=True)
            _check(
                [
                    "cmake", "-S", str(CPP_DIR), "-B", str(build),
                    "-DCMAKE_BUILD_TYPE=Release", "-DPADL_BUILD_TESTS=ON",
                    f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
                    f"-DCMAKE_CXX_COMPILER={_cxx_compiler()}",
                ],
                "cmake configure of runtime/cpp",
            )  # fmt: skip
            _check(["cmake", "--build", str(build), "-j2"], "cmake build of runtime/cpp")
            stamp.write_text(key)
    return build


# -- the raw tensor format of runtime/cpp/include/padl/tensor_file.h --------------------------------
_DTYPES = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.int64: "int64",
    torch.uint8: "uint8",
}


def write_tensor(path: Path, tensor: torch.Tensor) -> None:
    tensor = tensor.detach().cpu().contiguous()
    header = " ".join(
        ["padl-tensor", "1", _DTYPES[tensor.dtype], str(tensor.dim()), *map(str, tensor.shape)]
    )
    path.write_bytes(header.encode() + b"\n" + tensor.numpy().tobytes())


def read_tensor(path: Path) -> torch.Tensor:
    header, data = path.read_bytes().split(b"\n", 1)
    magic, version, dtype, ndim, *shape = header.decode().split()
    assert (magic, version, int(ndim)) == ("padl-tensor", "1", len(shape))
    torch_dtype = next(t for t, name in _DTYPES.items() if name == dtype)
    return torch.frombuffer(bytearray(data), dtype=torch_dtype).reshape([int(s) for s in shape])


# -- the pipelines `padlc build` compiles ----------------------------------------------------------
# Module attributes, so the CLI can name them (`padlc build tests.e2e.test_cpp:CLASSIFIER ...`). Their
# weights are whatever the build process initialises: every check compares two loaders of one artifact.

#: A classifier with a Python preprocess (`to_image`, per item): C++ gets the forward only.
CLASSIFIER = (
    transform(code.to_image)
    >> same.float() >> same.div(255.0) >> same.permute(2, 0, 1)
    >> batch >> transform(code.ConvNet)(N_CLASSES) >> same.softmax(-1)
    >> unbatch >> transform(code.top_score)
)  # fmt: skip
CLASSIFIER_INPUTS = [1, 2, 3, 4]

#: The same network on raw uint8 images: the preprocess is `same` steps the build moves into the
#: forward, the postprocess a batch-safe `same` step, so the build scripts the whole pipeline.
SCRIPTABLE = (
    same.float() >> same.div(255.0) >> same.permute(2, 0, 1)
    >> batch >> transform(code.ConvNet)(N_CLASSES)
    >> unbatch >> same.softmax(-1)
)  # fmt: skip
SCRIPTABLE_INPUTS = [code.to_image(seed) for seed in (1, 2, 3, 4)]

#: A transformer text classifier. Its export keeps eager inference's fused encoder-layer kernel,
#: which AOTInductor has no C shim for and runs through its proxy executor: C++ must run that too.
TRANSFORMER = (
    transform(code.tokenize) >> transform(code.lookup)
    >> batch >> transform(code.Encoder)(16, 16, N_CLASSES) >> unbatch
)  # fmt: skip
TRANSFORMER_INPUTS = ["The cat sat on the mat", "a dog ran fast", "slow cat", "the end"]


#: Two raw tensors in, each batched as it is: the preprocess only marks the batch, so run() exists.
TWO_INPUTS = (batch / batch) >> transform(code.TwoInputs)() >> unbatch
TWO_INPUTS_INPUTS = [(torch.ones(4) * i, torch.ones(2) * -i) for i in range(1, 5)]


def padlc_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "padlc", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def padlc_build(name: str, target: Path, backend: str = "torchscript") -> Path:
    result = padlc_cli(
        "build", f"tests.e2e.test_cpp:{name}", "-o", target,
        "--inputs", f"tests.e2e.test_cpp:{name}_INPUTS", "--backend", backend,
    )  # fmt: skip
    if result.returncode != 0:
        pytest.fail(f"padlc build {name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return target


@pytest.fixture(scope="module")
def classifier_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return padlc_build("CLASSIFIER", tmp_path_factory.mktemp("cpp") / "classifier.padl")


@pytest.fixture(scope="module")
def scriptable_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return padlc_build("SCRIPTABLE", tmp_path_factory.mktemp("cpp") / "scriptable.padl")


@pytest.fixture
def artifact(tmp_path: Path, classifier_artifact: Path) -> Path:
    """A copy of the classifier artifact, free to damage."""
    return Path(shutil.copytree(classifier_artifact, tmp_path / "classifier.padl"))


def preprocessed_batch(
    artifact: Path, items: Sequence[Any], path: Path
) -> tuple[padl_runtime.CompiledPipeline, torch.Tensor]:
    """What a C++ caller of ``forward()`` gets from Python: the runtime's preprocess, then collate,
    written to ``path``."""
    pipeline = padl_runtime.load(artifact)
    assert pipeline.preprocess is not None
    collated = collate([pipeline.preprocess(item) for item in items])
    write_tensor(path, collated)
    return pipeline, collated


@pytest.fixture(scope="module")
def classifier_batch(
    classifier_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[padl_runtime.CompiledPipeline, torch.Tensor, Path]:
    path = tmp_path_factory.mktemp("inputs") / "batch.tensor"
    pipeline, collated = preprocessed_batch(classifier_artifact, range(10, 10 + BATCH), path)
    return pipeline, collated, path


def classify(build: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(build / "classify"), *map(str, args)], capture_output=True, text=True, check=False
    )


def _printed_classes(stdout: str) -> list[int]:
    return [int(line.rsplit(" ", 1)[1]) for line in stdout.splitlines() if line.startswith("row ")]


def _forward_outputs(
    pipeline: padl_runtime.CompiledPipeline, collated: torch.Tensor
) -> list[torch.Tensor]:
    with torch.no_grad():
        output = pipeline.forward(collated)
    return list(output) if isinstance(output, tuple | list) else [output]


def _assert_outputs_equal(
    out_dir: Path, expected: Sequence[torch.Tensor], rtol: float = 1e-5
) -> None:
    for i, want in enumerate(expected):
        got = read_tensor(out_dir / f"output_{i}.tensor")
        assert got.shape == want.shape
        assert torch.allclose(got, want, rtol=rtol, atol=rtol / 10), (i, got, want)
    assert not (out_dir / f"output_{len(expected)}.tensor").exists()


# -- SHA-256 --------------------------------------------------------------------------------------
def test_sha256_matches_known_vectors_and_hashlib_around_block_boundaries(
    cpp_build: Path, tmp_path: Path
) -> None:
    known = {
        b"": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        b"abc": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq": (
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        ),
        b"a" * 1_000_000: "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
    }
    rng = random.Random(0)
    # Every length across two block boundaries, plus one spanning several 1 MiB read chunks.
    contents = (
        list(known) + [rng.randbytes(n) for n in range(130)] + [rng.randbytes(3 * (1 << 20) + 17)]
    )
    paths = []
    for i, content in enumerate(contents):
        paths.append(tmp_path / f"{i}.bin")
        paths[-1].write_bytes(content)
    result = subprocess.run(
        [str(cpp_build / "padl_sha256sum"), *map(str, paths)],
        capture_output=True,
        text=True,
        check=True,
    )
    digests = [line.split()[0] for line in result.stdout.splitlines()]
    assert digests[: len(known)] == list(known.values())
    assert digests == [hashlib.sha256(c).hexdigest() for c in contents]


# -- forward and run ------------------------------------------------------------------------------
def test_classify_forward_on_the_preprocessed_batch_matches_padl_runtime(
    cpp_build: Path,
    classifier_artifact: Path,
    classifier_batch: tuple[padl_runtime.CompiledPipeline, torch.Tensor, Path],
    tmp_path: Path,
) -> None:
    pipeline, collated, batch_path = classifier_batch
    result = classify(cpp_build, "--out", tmp_path / "out", classifier_artifact, batch_path)
    assert result.returncode == 0, result.stderr
    assert "backend torchscript (forward/forward.ts)" in result.stderr

    expected = _forward_outputs(pipeline, collated)
    _assert_outputs_equal(tmp_path / "out", expected)
    assert _printed_classes(result.stdout) == expected[0].argmax(1).tolist()


def test_classify_run_on_raw_inputs_matches_padl_runtime_eval_apply(
    cpp_build: Path, scriptable_artifact: Path, tmp_path: Path
) -> None:
    images = [code.to_image(seed) for seed in range(10, 10 + BATCH)]
    write_tensor(tmp_path / "raw.tensor", collate(images))

    result = classify(
        cpp_build, "--run", "--out", tmp_path / "out", scriptable_artifact, tmp_path / "raw.tensor"
    )
    assert result.returncode == 0, result.stderr

    expected = torch.stack(list(padl_runtime.load(scriptable_artifact).eval_apply(images)))
    _assert_outputs_equal(tmp_path / "out", [expected])


def test_run_takes_one_raw_tensor_per_input_of_a_parallel_of_batch_markers(
    cpp_build: Path, tmp_path: Path
) -> None:
    artifact = padlc_build("TWO_INPUTS", tmp_path / "two.padl")
    xs = torch.stack([x for x, _ in TWO_INPUTS_INPUTS])
    ys = torch.stack([y for _, y in TWO_INPUTS_INPUTS])
    write_tensor(tmp_path / "x.tensor", xs)
    write_tensor(tmp_path / "y.tensor", ys)
    result = classify(
        cpp_build, "--run", "--out", tmp_path / "out", artifact, tmp_path / "x.tensor",
        tmp_path / "y.tensor",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    expected = torch.stack(list(padl_runtime.load(artifact).eval_apply(TWO_INPUTS_INPUTS)))
    _assert_outputs_equal(tmp_path / "out", [expected])


def test_run_without_scripted_pipeline_fails_quoting_the_reason(
    cpp_build: Path,
    classifier_artifact: Path,
    classifier_batch: tuple[padl_runtime.CompiledPipeline, torch.Tensor, Path],
) -> None:
    result = classify(cpp_build, "--run", classifier_artifact, classifier_batch[2])
    assert result.returncode == 2
    assert "run() is not available" in result.stderr
    assert "the preprocess `to_image` is Python code run per item" in result.stderr


def test_forward_with_wrong_number_of_inputs_is_refused(
    cpp_build: Path,
    classifier_artifact: Path,
    classifier_batch: tuple[padl_runtime.CompiledPipeline, torch.Tensor, Path],
) -> None:
    batch_path = classifier_batch[2]
    result = classify(cpp_build, classifier_artifact, batch_path, batch_path)
    assert result.returncode == 1
    assert "forward takes 1 tensors" in result.stderr and "got 2" in result.stderr


@pytest.mark.parametrize(
    ("change", "got"),
    [
        pytest.param(lambda batch: batch.float(), f"got float32 [{BATCH}, 8, 8, 3]", id="dtype"),
        pytest.param(lambda batch: batch[0], "got uint8 [8, 8, 3]", id="no batch axis"),
    ],
)
def test_forward_refuses_a_batch_of_another_dtype_or_rank(
    cpp_build: Path,
    classifier_artifact: Path,
    classifier_batch: tuple[padl_runtime.CompiledPipeline, torch.Tensor, Path],
    tmp_path: Path,
    change: Any,
    got: str,
) -> None:
    write_tensor(tmp_path / "bad.tensor", change(classifier_batch[1]).contiguous())
    result = classify(cpp_build, classifier_artifact, tmp_path / "bad.tensor")
    assert result.returncode == 1
    assert "the torchscript forward takes input_0 as uint8 [batch, 8, 8, 3]" in result.stderr
    assert got in result.stderr


def test_run_with_wrong_number_of_inputs_is_refused(
    cpp_build: Path, scriptable_artifact: Path, tmp_path: Path
) -> None:
    write_tensor(tmp_path / "raw.tensor", collate([code.to_image(1), code.to_image(2)]))
    raw = tmp_path / "raw.tensor"
    result = classify(cpp_build, "--run", scriptable_artifact, raw, raw)
    assert result.returncode == 1
    assert "run() takes 1 raw input tensors" in result.stderr and "got 2" in result.stderr


def test_an_unknown_backend_name_is_refused(
    cpp_build: Path,
    classifier_artifact: Path,
    classifier_batch: tuple[padl_runtime.CompiledPipeline, torch.Tensor, Path],
) -> None:
    result = classify(cpp_build, "--backend", "onnx", classifier_artifact, classifier_batch[2])
    assert result.returncode != 0
    assert "unknown backend 'onnx'" in result.stderr


# -- what `padlc inspect` tells a C++ user -------------------------------------------------------
def test_inspect_says_why_cpp_run_is_not_available(classifier_artifact: Path) -> None:
    result = padlc_cli("inspect", classifier_artifact)
    assert result.returncode == 0, result.stderr
    assert (
        "C++: forward (forward/forward.ts); run() not available: the preprocess `to_image` is "
        "Python code run per item, which TorchScript cannot take over" in result.stdout
    )
    assert not (classifier_artifact / "pipeline.ts").exists()


def test_inspect_says_cpp_run_is_available(scriptable_artifact: Path) -> None:
    result = padlc_cli("inspect", scriptable_artifact)
    assert result.returncode == 0, result.stderr
    assert "C++: forward (forward/forward.ts) and run() (pipeline.ts)" in result.stdout
    assert (scriptable_artifact / "pipeline.ts").is_file()


# -- the demo artifact ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    result = padlc_cli("demo", "--out", out, "--backend", "torchscript")
    if result.returncode != 0:
        pytest.fail(f"padlc demo failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return out


def test_classify_predicts_the_digits_padl_runtime_predicts_with_the_demo_artifact(
    cpp_build: Path, demo_out: Path, tmp_path: Path
) -> None:
    artifact = demo_out / "digits-built.padl"
    images = list(np.load(demo_out / "data" / "test_images.npy")[:32])
    pipeline, collated = preprocessed_batch(artifact, images, tmp_path / "digits.tensor")

    result = classify(cpp_build, "--out", tmp_path / "out", artifact, tmp_path / "digits.tensor")
    assert result.returncode == 0, result.stderr

    _assert_outputs_equal(tmp_path / "out", _forward_outputs(pipeline, collated))
    digits = [p["digit"] for p in pipeline.eval_apply(images)]
    assert _printed_classes(result.stdout) == digits


# -- refusing bad artifacts -----------------------------------------------------------------------
@pytest.fixture
def batch_path(classifier_batch: tuple[padl_runtime.CompiledPipeline, torch.Tensor, Path]) -> Path:
    return classifier_batch[2]


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_flip_last_byte, "does not match its SHA-256"),
        (lambda p: p.write_bytes(p.read_bytes()[:-1]), "the manifest records"),
        (Path.unlink, "is missing"),
    ],
    ids=["edited", "truncated", "deleted"],
)
def test_damaged_file_is_refused_naming_the_file(
    cpp_build: Path, artifact: Path, batch_path: Path, damage, message: str
) -> None:
    damage(artifact / "forward" / "forward.ts")
    result = classify(cpp_build, artifact, batch_path)
    assert result.returncode == 2
    assert "'forward/forward.ts'" in result.stderr
    assert message in result.stderr
    assert str(artifact) in result.stderr


def _edit_manifest(root: Path, **changes: object) -> None:
    data = json.loads((root / "manifest.json").read_text())
    data.update(changes)
    (root / "manifest.json").write_text(encode_manifest(data))


def test_unknown_format_version_is_refused(
    cpp_build: Path, artifact: Path, batch_path: Path
) -> None:
    _edit_manifest(artifact, format_version=4)
    result = classify(cpp_build, artifact, batch_path)
    assert result.returncode == 2
    assert "has format version 4; this runtime reads versions 1 to 3" in result.stderr


def test_edited_manifest_is_refused_by_its_digest(
    cpp_build: Path, artifact: Path, batch_path: Path
) -> None:
    raw = (artifact / "manifest.json").read_bytes()
    (artifact / "manifest.json").write_bytes(
        raw.replace(b'"has_batch": true', b'"has_batch": false')
    )
    result = classify(cpp_build, artifact, batch_path)
    assert result.returncode == 2
    assert "does not match its own digest" in result.stderr


def test_manifest_of_another_format_is_refused(
    cpp_build: Path, artifact: Path, batch_path: Path
) -> None:
    _edit_manifest(artifact, format="onnx")
    result = classify(cpp_build, artifact, batch_path)
    assert result.returncode == 2
    assert 'is not a padl manifest (no "format": "padl" entry)' in result.stderr


def test_missing_manifest_is_refused(cpp_build: Path, artifact: Path, batch_path: Path) -> None:
    (artifact / "manifest.json").unlink()
    result = classify(cpp_build, artifact, batch_path)
    assert result.returncode == 2
    assert f"{artifact} has no manifest.json" in result.stderr


def test_missing_artifact_directory_is_refused(
    cpp_build: Path, tmp_path: Path, batch_path: Path
) -> None:
    result = classify(cpp_build, tmp_path / "nowhere.padl", batch_path)
    assert result.returncode == 2
    assert f"No artifact at {tmp_path / 'nowhere.padl'}" in result.stderr


def test_manifest_that_is_not_json_is_refused(
    cpp_build: Path, artifact: Path, batch_path: Path
) -> None:
    (artifact / "manifest.json").write_text('{"format": "padl", ')
    result = classify(cpp_build, artifact, batch_path)
    assert result.returncode == 2
    assert "manifest.json is not valid JSON" in result.stderr


def test_manifest_path_outside_the_artifact_is_refused(
    cpp_build: Path, artifact: Path, batch_path: Path
) -> None:
    data = json.loads((artifact / "manifest.json").read_text())
    data["files"][0]["path"] = "../../etc/passwd"
    (artifact / "manifest.json").write_text(encode_manifest(data))
    result = classify(cpp_build, artifact, batch_path)
    assert result.returncode == 2
    assert "'../../etc/passwd' leaves the artifact directory" in result.stderr


def _add_foreign_aoti(root: Path, *, keep_other_backends: bool) -> None:
    """Make ``root`` list an AOTInductor package for a GPU first, as a build on that GPU would, and
    re-hash the manifest (padl_runtime.manifest's helpers) so only the arch stands in the way."""
    (root / "forward" / "forward.aoti.pt2").write_bytes(b"not native code for this machine\n")
    manifest = read_manifest(root)
    assert manifest.forward is not None
    aoti = BackendEntry(
        name="aoti", files=("forward/forward.aoti.pt2",), device="cuda", arch="cuda-sm90"
    )
    others = manifest.forward.backends if keep_other_backends else ()
    manifest = dataclasses.replace(
        manifest,
        files=(*manifest.files, file_entry(root, "forward/forward.aoti.pt2")),
        forward=dataclasses.replace(manifest.forward, backends=(aoti, *others)),
    )
    (root / "manifest.json").write_text(manifest.to_json())


def _host_arch() -> str:
    return f"cpu-{platform.machine()}"


def test_aoti_for_another_device_without_torchscript_is_refused(
    cpp_build: Path, artifact: Path, batch_path: Path
) -> None:
    _add_foreign_aoti(artifact, keep_other_backends=False)
    result = classify(cpp_build, artifact, batch_path)
    assert result.returncode == 2
    assert f"{artifact}: no forward backend in manifest.json can run on cpu" in result.stderr
    assert (
        f"aoti (forward/forward.aoti.pt2): compiled for cuda-sm90, this device (cpu) is {_host_arch()}"
        in result.stderr
    )
    assert "padlc build --backend torchscript" in result.stderr


def test_an_artifact_without_a_cpp_forward_names_the_backend_to_build_with(
    cpp_build: Path, batch_path: Path, tmp_path: Path
) -> None:
    exported = padlc_build("CLASSIFIER", tmp_path / "exported.padl", backend="export")
    result = classify(cpp_build, exported, batch_path)
    assert result.returncode == 2
    assert "export (forward/forward.pt2): the C++ runtime loads only aoti and torchscript" in (
        result.stderr
    )
    assert "padlc build --backend torchscript" in result.stderr
    assert "on a machine with this device" not in result.stderr


def test_aoti_for_another_device_falls_back_to_torchscript(
    cpp_build: Path,
    artifact: Path,
    classifier_batch: tuple[padl_runtime.CompiledPipeline, torch.Tensor, Path],
    tmp_path: Path,
) -> None:
    pipeline, collated, batch_path = classifier_batch
    _add_foreign_aoti(artifact, keep_other_backends=True)
    result = classify(cpp_build, "--out", tmp_path / "out", artifact, batch_path)
    assert result.returncode == 0, result.stderr
    assert "backend torchscript" in result.stderr
    assert "skipped aoti (forward/forward.aoti.pt2): compiled for cuda-sm90" in result.stderr
    _assert_outputs_equal(tmp_path / "out", _forward_outputs(pipeline, collated))


# -- AOTInductor ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def aoti_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return padlc_build("CLASSIFIER", tmp_path_factory.mktemp("cpp") / "aoti.padl", backend="aoti")


@pytest.mark.slow
def test_classify_aoti_forward_matches_padl_runtime(
    cpp_build: Path,
    aoti_artifact: Path,
    classifier_batch: tuple[padl_runtime.CompiledPipeline, torch.Tensor, Path],
    tmp_path: Path,
) -> None:
    artifact = aoti_artifact
    _, collated, batch_path = classifier_batch
    result = classify(cpp_build, "--out", tmp_path / "out", artifact, batch_path)
    assert result.returncode == 0, result.stderr
    assert "backend aoti (forward/forward.aoti.pt2)" in result.stderr
    expected = _forward_outputs(padl_runtime.load(artifact), collated)
    _assert_outputs_equal(tmp_path / "out", expected, rtol=1e-4)


@pytest.mark.slow
def test_aoti_forward_refuses_a_batch_of_other_sizes_than_built(
    cpp_build: Path,
    aoti_artifact: Path,
    classifier_batch: tuple[padl_runtime.CompiledPipeline, torch.Tensor, Path],
    tmp_path: Path,
) -> None:
    # compiled for [batch, 8, 8, 3]: a 7-wide image would be read past its end, not refused
    write_tensor(tmp_path / "narrow.tensor", classifier_batch[1][:, :, :7].contiguous())
    result = classify(cpp_build, aoti_artifact, tmp_path / "narrow.tensor")
    assert result.returncode == 1
    expected = (
        f"the aoti forward takes input_0 as uint8 [batch, 8, 8, 3], got uint8 [{BATCH}, 8, 7, 3]"
    )
    assert expected in result.stderr


@pytest.mark.slow
def test_classify_aoti_forward_with_a_fused_transformer_kernel_matches_padl_runtime(
    cpp_build: Path, tmp_path: Path
) -> None:
    artifact = padlc_build("TRANSFORMER", tmp_path / "transformer.padl", backend="aoti")
    manifest = read_manifest(artifact)
    assert manifest.forward is not None
    entry = manifest.forward.backend("aoti")
    assert entry is not None and "2 TransformerEncoderLayer" in entry.note
    texts = ["a cat", "the dog sat on a mat", "fast", "slow slow cat", "mat", "ran", "on", "the"]
    pipeline, collated = preprocessed_batch(artifact, texts, tmp_path / "batch.tensor")
    result = classify(cpp_build, "--out", tmp_path / "out", artifact, tmp_path / "batch.tensor")
    assert result.returncode == 0, result.stderr
    assert "backend aoti (forward/forward.aoti.pt2)" in result.stderr
    _assert_outputs_equal(tmp_path / "out", _forward_outputs(pipeline, collated), rtol=1e-4)
