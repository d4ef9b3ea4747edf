"""AOTInductor: built once, on one tiny model (about a minute on 2 CPU cores)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import padl_runtime
import padlc
from padlc.lowering import BACKENDS, host_arch
from tests.e2e.pipelines import FIXTURES

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        BACKENDS["aoti"].unavailable("cpu") is not None, reason="AOTInductor needs a C++ compiler"
    ),
]
TINY = next(f for f in FIXTURES if f.name == "no_postprocess")


@pytest.fixture(scope="session")
def aoti_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = padlc.build(
        TINY.make(),
        tmp_path_factory.mktemp("aoti") / "tiny.padl",
        inputs=TINY.inputs,
        backend=["aoti", "torchscript"],
    )
    assert result.backends == ("aoti", "torchscript")
    return result.path


def test_aoti_artifact_records_its_arch_and_matches_eager(aoti_artifact: Path) -> None:
    pipeline = padl_runtime.load(aoti_artifact)
    assert pipeline.backend.arch == host_arch("cpu")
    eager = TINY.make()
    for x in TINY.inputs:
        assert torch.allclose(pipeline.infer_apply(x), eager.infer_apply(x), atol=1e-5)


def test_with_a_torchscript_backend_beside_it_cpp_run_is_judged_on_the_pipeline(
    aoti_artifact: Path,
) -> None:
    # C++ loads the aoti forward; run() would script the whole pipeline, which TorchScript in the
    # artifact makes possible, so the reason is the pipeline's (its Python preprocess)
    cpp = padl_runtime.read_manifest(aoti_artifact).cpp
    assert cpp is not None and cpp.forward_file == "forward/forward.aoti.pt2"
    assert cpp.reason.startswith("the preprocess `"), cpp.reason
