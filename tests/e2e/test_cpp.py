"""The C++ runtime (runtime/cpp) loads a .padl artifact and computes what Python computes.

A session fixture builds the CMake project once into runtime/cpp/build/pytest-<key>, where the key
hashes the C++ sources, the torch version and the compiler, so a stale build is rebuilt and an
unchanged one is reused across test runs (about 25 s from scratch on a 2-core machine).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import random
import shutil
import subprocess
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import torch
from padl_runtime.manifest import (
    BackendEntry,
    CppSection,
    ForwardSection,
    Manifest,
    StageLayout,
    file_entry,
)
from torch import nn

REPO = Path(__file__).resolve().parents[2]
CPP_DIR = REPO / "runtime" / "cpp"
CPP_SOURCES = ("CMakeLists.txt", "include", "src", "examples", "tests", "third_party")
IN_FEATURES, N_CLASSES, BATCH = 16, 5, 8


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


# -- test artifacts -------------------------------------------------------------------------------
class TinyClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(IN_FEATURES, 32), nn.ReLU(), nn.Linear(32, N_CLASSES))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(x)
        return logits, logits.softmax(-1)


class TinyPipeline(nn.Module):
    """preprocess (uint8 -> scaled float) + forward + postprocess (argmax), as one scriptable module."""

    def __init__(self, forward: TinyClassifier) -> None:
        super().__init__()
        self.forward_stage = forward

    def forward(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _logits, probabilities = self.forward_stage(raw.to(torch.float32) / 255.0)
        return probabilities, probabilities.argmax(-1)


def _script(module: nn.Module) -> torch.jit.ScriptModule:
    # torch.jit.script is deprecated in torch 2.13 but is still how TorchScript artifacts are made.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(module)


def _host_arch() -> str:
    return f"cpu-{platform.machine()}"


# TODO(padlc build --backend torchscript): when the compiler can build a TorchScript artifact, make
# this fixture call `padlc build --backend torchscript` on an equivalent pipeline instead of writing
# the artifact by hand. Everything hand-made about the artifact is in this one function.
def write_artifact(
    root: Path,
    model: TinyClassifier,
    *,
    with_pipeline: bool = False,
    extra_backends: Sequence[tuple[BackendEntry, Path | None]] = (),
    torchscript: bool = True,
) -> None:
    """Write a built .padl artifact for ``model``: forward/forward.ts (+ pipeline.ts) and manifest.json.

    ``extra_backends`` go before the TorchScript entry (higher preference); each comes with the file
    to copy to its ``files[0]`` (None: write a few placeholder bytes).
    """
    (root / "forward").mkdir(parents=True)
    backends: list[BackendEntry] = []
    for entry, source in extra_backends:
        target = root / entry.files[0]
        if source is None:
            target.write_bytes(b"not native code for this machine\n")
        else:
            shutil.copyfile(source, target)
        backends.append(entry)
    if torchscript:
        _script(model).save(str(root / "forward" / "forward.ts"))
        backends.append(
            BackendEntry(
                name="torchscript",
                files=("forward/forward.ts",),
                device="cpu",
                torch_version=torch.__version__,
            )
        )
    if with_pipeline:
        _script(TinyPipeline(model)).save(str(root / "pipeline.ts"))
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    manifest = Manifest(
        padlc_version="0.1.0",
        kind="built",
        pipeline="TinyClassifier",
        module="tests.e2e.test_cpp",
        stages=StageLayout(preprocess="", forward="TinyClassifier", postprocess="", has_batch=True),
        files=tuple(file_entry(root, f) for f in files),
        torch_version=torch.__version__,
        forward=ForwardSection(
            backends=tuple(backends),
            stage_module="",
            graph_source="",
            inputs=({"name": "x", "dtype": "float32", "shape": ["batch", IN_FEATURES]},),
            outputs=(
                {"name": "logits", "dtype": "float32", "shape": ["batch", N_CLASSES]},
                {"name": "probabilities", "dtype": "float32", "shape": ["batch", N_CLASSES]},
            ),
        ),
        cpp=CppSection(
            forward_file="forward/forward.ts" if torchscript else None,
            run_available=with_pipeline,
            pipeline_file="pipeline.ts" if with_pipeline else None,
            reason=""
            if with_pipeline
            else "postprocess calls sorted() on a Python list, which TorchScript cannot script",
        ),
    )
    (root / "manifest.json").write_text(manifest.to_json())


@pytest.fixture
def model() -> TinyClassifier:
    torch.manual_seed(0)
    return TinyClassifier().eval()


@pytest.fixture
def artifact(tmp_path: Path, model: TinyClassifier) -> Path:
    root = tmp_path / "tiny.padl"
    write_artifact(root, model)
    return root


@pytest.fixture
def batch(tmp_path: Path) -> tuple[torch.Tensor, Path]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, IN_FEATURES, generator=generator)
    path = tmp_path / "x.tensor"
    write_tensor(path, x)
    return x, path


def classify(build: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(build / "classify"), *map(str, args)], capture_output=True, text=True, check=False
    )


def _printed_classes(stdout: str) -> list[int]:
    return [int(line.rsplit(" ", 1)[1]) for line in stdout.splitlines() if line.startswith("row ")]


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
def test_classify_forward_matches_python(
    cpp_build: Path,
    artifact: Path,
    model: TinyClassifier,
    batch: tuple[torch.Tensor, Path],
    tmp_path: Path,
) -> None:
    x, x_path = batch
    result = classify(cpp_build, "--out", tmp_path / "out", artifact, x_path)
    assert result.returncode == 0, result.stderr
    assert "backend torchscript (forward/forward.ts)" in result.stderr

    with torch.no_grad():
        expected = model(x)
    outputs = [read_tensor(tmp_path / "out" / f"output_{i}.tensor") for i in range(2)]
    assert not (tmp_path / "out" / "output_2.tensor").exists()
    for got, want in zip(outputs, expected, strict=True):
        assert got.shape == want.shape
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)
    assert _printed_classes(result.stdout) == expected[0].argmax(1).tolist()


def test_classify_runs_whole_pipeline_when_available(
    cpp_build: Path, tmp_path: Path, model: TinyClassifier
) -> None:
    root = tmp_path / "pipeline.padl"
    write_artifact(root, model, with_pipeline=True)
    raw = torch.randint(
        0, 256, (BATCH, IN_FEATURES), dtype=torch.uint8, generator=torch.Generator().manual_seed(2)
    )
    write_tensor(tmp_path / "raw.tensor", raw)

    result = classify(cpp_build, "--out", tmp_path / "out", root, tmp_path / "raw.tensor")
    assert result.returncode == 0, result.stderr

    with torch.no_grad():
        probabilities, classes = TinyPipeline(model)(raw)
    assert torch.allclose(
        read_tensor(tmp_path / "out" / "output_0.tensor"), probabilities, rtol=1e-5, atol=1e-6
    )
    assert torch.equal(read_tensor(tmp_path / "out" / "output_1.tensor"), classes)


def test_run_without_scripted_pipeline_fails_quoting_the_reason(
    cpp_build: Path, artifact: Path, batch: tuple[torch.Tensor, Path]
) -> None:
    result = classify(cpp_build, "--run", artifact, batch[1])
    assert result.returncode == 2
    assert "run() is not available" in result.stderr
    assert "postprocess calls sorted() on a Python list" in result.stderr


def test_forward_with_wrong_number_of_inputs_is_refused(
    cpp_build: Path, artifact: Path, batch: tuple[torch.Tensor, Path]
) -> None:
    result = classify(cpp_build, artifact, batch[1], batch[1])
    assert result.returncode == 1
    assert "forward takes 1 tensors" in result.stderr and "got 2" in result.stderr


# -- refusing bad artifacts -----------------------------------------------------------------------
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
    cpp_build: Path, artifact: Path, batch: tuple[torch.Tensor, Path], damage, message: str
) -> None:
    damage(artifact / "forward" / "forward.ts")
    result = classify(cpp_build, artifact, batch[1])
    assert result.returncode == 2
    assert "'forward/forward.ts'" in result.stderr
    assert message in result.stderr
    assert str(artifact) in result.stderr


def _edit_manifest(root: Path, **changes: object) -> None:
    data = json.loads((root / "manifest.json").read_text())
    data.update(changes)
    (root / "manifest.json").write_text(json.dumps(data))


def test_unknown_format_version_is_refused(
    cpp_build: Path, artifact: Path, batch: tuple[torch.Tensor, Path]
) -> None:
    _edit_manifest(artifact, format_version=2)
    result = classify(cpp_build, artifact, batch[1])
    assert result.returncode == 2
    assert "has format version 2; this runtime reads version 1" in result.stderr


def test_manifest_of_another_format_is_refused(
    cpp_build: Path, artifact: Path, batch: tuple[torch.Tensor, Path]
) -> None:
    _edit_manifest(artifact, format="onnx")
    result = classify(cpp_build, artifact, batch[1])
    assert result.returncode == 2
    assert 'is not a padl manifest (no "format": "padl" entry)' in result.stderr


def test_missing_manifest_is_refused(
    cpp_build: Path, artifact: Path, batch: tuple[torch.Tensor, Path]
) -> None:
    (artifact / "manifest.json").unlink()
    result = classify(cpp_build, artifact, batch[1])
    assert result.returncode == 2
    assert f"{artifact} has no manifest.json" in result.stderr


def test_missing_artifact_directory_is_refused(
    cpp_build: Path, tmp_path: Path, batch: tuple[torch.Tensor, Path]
) -> None:
    result = classify(cpp_build, tmp_path / "nowhere.padl", batch[1])
    assert result.returncode == 2
    assert f"No artifact at {tmp_path / 'nowhere.padl'}" in result.stderr


def test_manifest_that_is_not_json_is_refused(
    cpp_build: Path, artifact: Path, batch: tuple[torch.Tensor, Path]
) -> None:
    (artifact / "manifest.json").write_text('{"format": "padl", ')
    result = classify(cpp_build, artifact, batch[1])
    assert result.returncode == 2
    assert "manifest.json is not valid JSON" in result.stderr


def test_manifest_path_outside_the_artifact_is_refused(
    cpp_build: Path, artifact: Path, batch: tuple[torch.Tensor, Path]
) -> None:
    data = json.loads((artifact / "manifest.json").read_text())
    data["files"][0]["path"] = "../../etc/passwd"
    (artifact / "manifest.json").write_text(json.dumps(data))
    result = classify(cpp_build, artifact, batch[1])
    assert result.returncode == 2
    assert "'../../etc/passwd' leaves the artifact directory" in result.stderr


def _foreign_aoti() -> tuple[BackendEntry, None]:
    entry = BackendEntry(
        name="aoti", files=("forward/forward.aoti.pt2",), device="cuda", arch="cuda-sm90"
    )
    return entry, None


def test_aoti_for_another_device_without_torchscript_is_refused(
    cpp_build: Path, tmp_path: Path, model: TinyClassifier, batch: tuple[torch.Tensor, Path]
) -> None:
    root = tmp_path / "gpu-only.padl"
    write_artifact(root, model, extra_backends=[_foreign_aoti()], torchscript=False)
    result = classify(cpp_build, root, batch[1])
    assert result.returncode == 2
    assert f"{root}: no forward backend in manifest.json can run on cpu" in result.stderr
    assert (
        f"aoti (forward/forward.aoti.pt2): compiled for cuda-sm90, this device (cpu) is {_host_arch()}"
        in result.stderr
    )
    assert "padlc build --backend torchscript" in result.stderr


def test_aoti_for_another_device_falls_back_to_torchscript(
    cpp_build: Path, tmp_path: Path, model: TinyClassifier, batch: tuple[torch.Tensor, Path]
) -> None:
    root = tmp_path / "gpu-and-ts.padl"
    write_artifact(root, model, extra_backends=[_foreign_aoti()])
    result = classify(cpp_build, "--out", tmp_path / "out", root, batch[1])
    assert result.returncode == 0, result.stderr
    assert "backend torchscript" in result.stderr
    assert "skipped aoti (forward/forward.aoti.pt2): compiled for cuda-sm90" in result.stderr
    with torch.no_grad():
        expected = model(batch[0])[0]
    assert torch.allclose(
        read_tensor(tmp_path / "out" / "output_0.tensor"), expected, rtol=1e-5, atol=1e-6
    )


# -- AOTInductor ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_classify_aoti_package_matches_python(
    cpp_build: Path, tmp_path: Path, model: TinyClassifier, batch: tuple[torch.Tensor, Path]
) -> None:
    x, x_path = batch
    batch_dim = torch.export.Dim("batch", min=1, max=1024)
    exported = torch.export.export(model, (x,), dynamic_shapes=({0: batch_dim},))
    with warnings.catch_warnings():
        # Inductor itself still touches torch.jit.script_method, deprecated in torch 2.13.
        warnings.filterwarnings(
            "ignore", r"`torch\.jit\.script_method` is deprecated", DeprecationWarning
        )
        warnings.filterwarnings(
            "ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning
        )
        package = torch._inductor.aoti_compile_and_package(
            exported, package_path=str(tmp_path / "forward.aoti.pt2")
        )
    entry = BackendEntry(
        name="aoti",
        files=("forward/forward.aoti.pt2",),
        device="cpu",
        arch=_host_arch(),
        torch_version=torch.__version__,
    )
    root = tmp_path / "aoti.padl"
    write_artifact(root, model, extra_backends=[(entry, Path(package))])

    result = classify(cpp_build, "--out", tmp_path / "out", root, x_path)
    assert result.returncode == 0, result.stderr
    assert "backend aoti (forward/forward.aoti.pt2)" in result.stderr
    with torch.no_grad():
        expected = model(x)
    for i, want in enumerate(expected):
        assert torch.allclose(
            read_tensor(tmp_path / "out" / f"output_{i}.tensor"), want, rtol=1e-4, atol=1e-5
        )
