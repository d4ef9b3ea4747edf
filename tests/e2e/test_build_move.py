"""The stage-boundary move of functions: a trailing function vmap reproduces runs batched in the
forward, one it does not stays in the preprocess, and a backend that cannot lower it falls back."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import padl_runtime
import padlc
from padl_runtime.manifest import read_manifest
from padlc import Transform, batch, same, transform, unbatch
from tests.e2e import move_code as code

INPUTS = (1, 2, 3)


def image_pipeline(step: Callable[[torch.Tensor], torch.Tensor] = code.normalise) -> Transform:
    torch.manual_seed(0)
    return (
        transform(code.load) >> same.permute(2, 0, 1) >> same.float() >> transform(step)
        >> batch >> transform(code.Classifier)() >> same.softmax(-1)
        >> unbatch >> transform(code.top_probability)
    )  # fmt: skip


def build(
    tmp_path: Path, name: str, step: Any = code.normalise, **options: Any
) -> padlc.BuildResult:
    return padlc.build(image_pipeline(step), tmp_path / name, inputs=INPUTS, **options)


def largest_difference(a: Path, b: Path, cwd: Path) -> tuple[float, int]:
    """In a fresh process with padl_runtime only: the largest difference between the outputs of
    artifacts ``a`` and ``b`` (numbers per item) over infer_apply per item and eval_apply in
    batches, and how many pairs were compared."""
    script = (
        "import sys, padl_runtime\n"
        "a, b = padl_runtime.load(sys.argv[1]), padl_runtime.load(sys.argv[2])\n"
        "items = [1, 2, 3, 7, 8, 11]\n"
        "pairs = [(a.infer_apply(x), b.infer_apply(x)) for x in items]\n"
        "pairs += zip(a.eval_apply(items, batch_size=4), b.eval_apply(items, batch_size=4))\n"
        "print(max(abs(x - y) for x, y in pairs), len(pairs))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(a), str(b)],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
    )
    error, count = run.stdout.split()
    return float(error), int(count)


def test_function_that_vmap_reproduces_moves_with_the_steps_before_it(tmp_path: Path) -> None:
    result = build(tmp_path, "moved.padl", backend="export")
    assert result.moved_to_forward == ("same.permute(2, 0, 1)", "same.float()", "normalise")
    forward = read_manifest(result.path).forward
    assert "normalise" in forward.moved_to_forward
    assert forward.inputs[0]["dtype"] == "uint8"  # the batch crosses as uint8
    assert "vmap_normalise(" in (result.path / "forward/graph.py").read_text()


@pytest.mark.parametrize("backend", ["export", "eager"])
def test_moved_function_outputs_equal_the_unoptimised_build(tmp_path: Path, backend: str) -> None:
    moved = build(tmp_path, "moved.padl", backend=backend)
    kept = build(tmp_path, "kept.padl", backend=backend, move_to_forward=False)
    assert "normalise" in moved.moved_to_forward
    assert not kept.moved_to_forward
    error, count = largest_difference(moved.path, kept.path, tmp_path)
    assert error <= 1e-5 and count == 12


def test_function_vmap_cannot_run_stays_in_the_preprocess(tmp_path: Path) -> None:
    result = build(tmp_path, "item.padl", step=code.by_brightest, backend="export")
    assert result.moved_to_forward == ()
    assert read_manifest(result.path).forward.inputs[0]["dtype"] == "float32"


def test_torchscript_falls_back_to_moving_only_same_steps(tmp_path: Path) -> None:
    result = build(tmp_path, "ts.padl", backend="torchscript")
    assert result.backend == "torchscript"
    assert "normalise" not in result.moved_to_forward
    assert result.attempts[0][0] == "torchscript" and "failed to lower" in result.attempts[0][1]
    assert any("moving `normalise`" in note for note in result.notes)
    pipeline = padl_runtime.load(result.path)
    expected = image_pipeline().infer_apply(7)
    assert abs(pipeline.infer_apply(7) - expected) <= 1e-5


def test_a_backend_that_cannot_take_the_move_drops_it_for_all_and_says_so(tmp_path: Path) -> None:
    result = build(tmp_path, "both.padl", backend=["export", "torchscript"])
    assert result.backends == ("export", "torchscript")
    assert "normalise" not in result.moved_to_forward
    assert any("for every backend" in note for note in result.notes)
    first_round = [outcome for name, outcome in result.attempts[:2]]
    assert all(outcome.endswith("(with the functions moved; discarded)") for outcome in first_round)
    assert not result.attempts[-1][1].endswith("discarded)")


def test_exported_program_holds_plain_batched_operations_not_vmap(tmp_path: Path) -> None:
    result = build(tmp_path, "moved.padl", backend="export")
    program = torch.export.load(str(result.path / "forward/forward.pt2"))
    modules = {
        getattr(node.target, "__module__", "") or ""
        for node in program.graph.nodes
        if node.op == "call_function"
    }
    assert not any(m.startswith("torch._functorch") for m in modules), modules


def classifier_with_tensor_postprocess() -> Transform:
    torch.manual_seed(0)
    return (
        transform(code.load) >> same.permute(2, 0, 1) >> same.float()
        >> batch >> transform(code.Classifier)()
        >> unbatch >> same.softmax(-1) >> same.argmax(-1) >> transform(code.label_index)
    )  # fmt: skip


@pytest.mark.parametrize("backend", ["export", "torchscript"])
def test_leading_postprocess_same_steps_run_batched_in_the_forward(
    tmp_path: Path, backend: str
) -> None:
    pipeline = classifier_with_tensor_postprocess()
    moved = padlc.build(pipeline, tmp_path / "moved.padl", inputs=INPUTS, backend=backend)
    assert moved.moved_to_forward[-2:] == ("same.softmax(-1)", "same.argmax(-1)")
    assert read_manifest(moved.path).forward.outputs[0]["dtype"] == "int64"  # labels cross back
    kept = padlc.build(
        pipeline, tmp_path / "kept.padl", inputs=INPUTS, backend=backend, move_to_forward=False
    )
    assert not kept.moved_to_forward
    assert largest_difference(moved.path, kept.path, tmp_path) == (0, 12)  # the same labels


def test_built_eval_apply_gives_one_output_per_item_when_only_unbatch_follows(
    tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    pipeline = (
        transform(code.load) >> same.permute(2, 0, 1) >> same.float()
        >> batch >> transform(code.Classifier)() >> unbatch
    )  # fmt: skip
    built = padl_runtime.load(padlc.build(pipeline, tmp_path / "u.padl", inputs=INPUTS).path)
    outputs = list(built.eval_apply([1, 2, 3, 4, 5], batch_size=2))
    expected = list(pipeline.eval_apply([1, 2, 3, 4, 5], batch_size=2))
    assert len(outputs) == len(expected) == 5
    assert all(torch.allclose(o, e, atol=1e-5) for o, e in zip(outputs, expected, strict=True))
