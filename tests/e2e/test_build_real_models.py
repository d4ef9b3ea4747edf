"""The real-model build matrix, written as users write it: transformers' ViT and ResNet (the image
rows: torchvision does not run with the pinned CPU torch), a BERT-like classifier and a GPT-2-like
scorer from small configs with a tokenizer built from a vocab file this test writes, an LSTM
tagger, all as instances (``transform(model)``): export, onnx and torchscript for every row, aoti
for one. Each artifact is loaded in ONE fresh process that cannot import padlc and compared with the
eager pipeline in infer and eval mode. A model with data-dependent control flow fails on export
and onnx naming the transform, the line and TorchScript, which builds it.

Every build is made once per test run (session fixture) without the build's own verification:
the fresh process below checks them all at once. benchmarks/real_models.py times the same rows
with verification (docs/building.md's coverage table).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import padlc
from padlc.builder.verify import canonical, compare
from tests.e2e import real_models_code as code
from tests.e2e.runtime_child import run_in_runtime

pytestmark = pytest.mark.slow

BACKENDS = ("export", "onnx", "torchscript")
AOTI_ROW = "resnet"
CELLS = [(row.name, b) for row in code.ROWS for b in BACKENDS] + [(AOTI_ROW, "aoti")]


@pytest.fixture(scope="session")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("real_models")
    vocab = code.write_vocab(root)
    rows = {row.name: row for row in (*code.ROWS, code.GATED)}
    pipelines = {name: row.make(vocab) for name, row in rows.items()}
    inputs = {name: row.inputs() for name, row in rows.items()}
    expected = {
        name: {
            "infer": [canonical(p.infer_apply(x)) for x in inputs[name]],
            "eval": [canonical(y) for y in p.eval_apply(inputs[name], batch_size=2)],
        }
        for name, p in pipelines.items()
    }
    built: dict[str, Any] = {}
    for name, backend in [*CELLS, ("gated", "torchscript")]:
        key = f"{name}-{backend}"
        try:
            built[key] = padlc.build(
                pipelines[name], root / key, inputs=inputs[name], backend=backend, verify=False
            )
        except padlc.PadlcError as exc:
            built[key] = exc
    failures = {}
    for backend in ("export", "onnx"):
        with pytest.raises(padlc.LoweringError) as info:
            padlc.build(pipelines["gated"], root / f"gated-{backend}", inputs=inputs["gated"], backend=backend)  # fmt: skip
        failures[backend] = str(info.value)
    jobs = {
        key: (result.path, inputs[key.rsplit("-", 1)[0]], key.rsplit("-", 1)[1])
        for key, result in built.items()
        if not isinstance(result, Exception)
    }
    return {
        "built": built,
        "loaded": run_in_runtime(jobs),
        "expected": expected,
        "failures": failures,
    }


@pytest.mark.parametrize(("row", "backend"), CELLS, ids=[f"{r}-{b}" for r, b in CELLS])
def test_a_real_model_instance_builds_and_matches_eager_in_a_fresh_process(
    matrix: dict[str, Any], row: str, backend: str
) -> None:
    key = f"{row}-{backend}"
    result = matrix["built"][key]
    assert not isinstance(result, Exception), f"{key} failed to build: {result}"
    loaded = matrix["loaded"][key]
    assert loaded.get("backend") == backend, loaded.get("error")
    for mode in ("infer", "eval"):
        _, problem = compare(loaded[mode], matrix["expected"][row][mode], 1e-4)
        assert problem is None, f"{key} {mode}_apply: {problem}"


#: ONNX's exporter folds a ResNet's BatchNorm into its convolutions and packs an LSTM's weights into
#: its own layout: new tensors, which stay in the ONNX file
SHARED = [(row.name, "export") for row in code.ROWS] + [
    (row, "onnx") for row in ("vit", "bert", "gpt2")
]


@pytest.mark.parametrize(("row", "backend"), SHARED, ids=[f"{r}-{b}" for r, b in SHARED])
def test_a_real_models_compiled_forward_reads_the_lineages_weights(
    matrix: dict[str, Any], row: str, backend: str
) -> None:
    from padl_runtime import read_manifest

    root = matrix["built"][f"{row}-{backend}"].path
    manifest = read_manifest(root)
    entry = manifest.forward.backend(backend)  # type: ignore[union-attr]
    assert manifest.module == "pipeline.py"  # the instance was captured: a lineage
    assert entry is not None and entry.weights, "the forward holds its own copy of the weights"
    stored = load_file(str(root / "weights.safetensors"))
    read = set(json.loads((root / entry.weights).read_text())["tensors"].values())
    # by content: tied weights (GPT-2's embedding and output layer) are stored under two keys
    contents = {_content(t): t.nbytes for t in stored.values()}
    shared = {_content(stored[key]) for key in read}
    assert sum(contents[c] for c in shared) >= 0.9 * sum(contents.values())


def _content(tensor: Any) -> tuple[Any, ...]:
    return (
        tensor.dtype,
        tuple(tensor.shape),
        tensor.contiguous().view(-1).view(torch.uint8).numpy().tobytes(),
    )


@pytest.mark.parametrize("backend", ["export", "onnx"])
def test_data_dependent_control_flow_fails_naming_the_transform_line_and_torchscript(
    matrix: dict[str, Any], backend: str
) -> None:
    message = matrix["failures"][backend]
    line = next(
        i
        for i, text in enumerate(Path(code.__file__).read_text().splitlines(), 1)
        if "if y.sum() > 0:" in text
    )
    assert f"with backend {backend!r}: transform `<Gate instance>`" in message
    assert f"at real_models_code.py:{line} `if y.sum() > 0:`" in message
    assert "What to do: build with --backend torchscript" in message


def test_torchscript_builds_the_data_dependent_model_and_matches_eager(
    matrix: dict[str, Any],
) -> None:
    loaded = matrix["loaded"]["gated-torchscript"]
    for mode in ("infer", "eval"):
        _, problem = compare(loaded[mode], matrix["expected"]["gated"][mode], 1e-4)
        assert problem is None, f"gated torchscript {mode}_apply: {problem}"
    # the two examples take the two branches of the control flow
    signs = {bool((y < 0).any()) for y in matrix["expected"]["gated"]["infer"]}
    assert signs == {True, False}
