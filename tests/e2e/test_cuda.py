"""On a CUDA device, padlc's applies and built artifacts give the CPU's results.

Skipped where torch sees no CUDA device (CI has none); on a GPU machine run
``pytest tests/e2e/test_cuda.py`` (``benchmarks/gpu.sh`` does, before the benchmark).
TF32 is switched off here so that GPU and CPU results agree to float32 rounding.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import padlc
from padlc import batch, same, transform
from tests.e2e import move_code as code
from tests.e2e.test_build_move import image_pipeline

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

ITEMS = list(range(1, 41))
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def full_float32() -> Iterator[None]:
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture(scope="module")
def expected() -> list[float]:
    """The CPU pipeline's outputs, item by item."""
    pipeline = image_pipeline()
    return [pipeline.infer_apply(item) for item in ITEMS]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_eval_apply_on_cuda_equals_cpu(expected: list[float], num_workers: int) -> None:
    pipeline = image_pipeline().pd_to("cuda")
    got = list(pipeline.eval_apply(ITEMS, batch_size=8, num_workers=num_workers))
    assert got == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_eval_apply_with_post_workers_on_cuda_equals_cpu(
    expected: list[float], num_workers: int
) -> None:
    pipeline = image_pipeline().pd_to("cuda")
    outputs = pipeline.eval_apply(ITEMS, batch_size=8, num_workers=num_workers, post_workers=2)
    assert list(outputs) == pytest.approx(expected, abs=1e-5)


def test_eval_apply_on_cuda_returns_unpinned_cpu_tensors() -> None:
    pipeline = (
        transform(code.load) >> same.permute(2, 0, 1) >> same.float() >> batch
        >> transform(code.Classifier)() >> padlc.unbatch
    )  # fmt: skip
    outputs = list(pipeline.pd_to("cuda").eval_apply(ITEMS[:10], batch_size=4))
    assert all(o.device.type == "cpu" and not o.is_pinned() for o in outputs)


def test_infer_apply_on_cuda_equals_cpu(expected: list[float]) -> None:
    pipeline = image_pipeline().pd_to("cuda")
    assert [pipeline.infer_apply(item) for item in ITEMS] == pytest.approx(expected, abs=1e-5)


def test_train_apply_on_cuda_backpropagates_into_the_cuda_parameters() -> None:
    torch.manual_seed(0)
    model = transform(code.Classifier)()
    pipeline = (
        transform(code.load) >> same.permute(2, 0, 1) >> same.float() >> transform(code.normalise)
        >> batch >> model >> same.sum()
    )  # fmt: skip
    pipeline.pd_to("cuda")
    for loss in pipeline.train_apply(ITEMS[:16], batch_size=8):
        loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and g.is_cuda and bool(g.abs().sum() > 0) for g in grads)


BACKENDS = ["eager", "export", "torchscript", "onnx", "aoti"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_artifact_built_for_cuda_runs_on_cuda_in_a_fresh_process(
    tmp_path: Path, expected: list[float], backend: str
) -> None:
    if backend == "onnx":
        ort = pytest.importorskip("onnxruntime")
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            pytest.skip("onnxruntime has no CUDAExecutionProvider here")
    result = padlc.build(
        image_pipeline(), tmp_path / f"{backend}.padl", inputs=(1, 2, 3),
        backend=backend, device="cuda",
    )  # fmt: skip
    script = (
        "import json, sys, torch, padl_runtime\n"
        "torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False\n"
        "p = padl_runtime.load(sys.argv[1], device='cuda', backend=sys.argv[2])\n"
        f"items = {ITEMS!r}\n"
        "single = [p.infer_apply(x) for x in items]\n"
        "batched = list(p.eval_apply(items, batch_size=8, num_workers=2))\n"
        "print(json.dumps([single, batched, 'padlc' in sys.modules]))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(result.path), backend],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    single, batched, imported_padlc = json.loads(run.stdout.splitlines()[-1])
    assert single == pytest.approx(expected, abs=1e-4)
    assert batched == pytest.approx(expected, abs=1e-4)
    assert imported_padlc is False


def test_a_fused_transformer_forward_builds_and_verifies_on_cuda(tmp_path: Path) -> None:
    # export only: an AOTInductor build for CUDA takes much of gpu.sh's time for its tests.
    from tests.e2e.pipelines import TEXTS, transformer

    torch.manual_seed(0)
    # The build verifies the artifact on CUDA in a fresh process against the eager pipeline there.
    result = padlc.build(
        transformer(), tmp_path / "export.padl", inputs=TEXTS, backend="export", device="cuda"
    )
    assert result.backend == "export"
    assert any("2 TransformerEncoderLayer" in note for note in result.notes)
