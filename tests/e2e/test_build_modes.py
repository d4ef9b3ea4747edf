"""Every mode is faithful: a built artifact's infer_apply and eval_apply each equal the eager
pipeline's, with mode switches before `batch` and after `unbatch`; a switch inside the forward
stage makes the artifact refuse eval_apply, saying why."""

from __future__ import annotations

from typing import Any

import pytest

import padlc
from padl_runtime import read_manifest
from padlc.builder.verify import canonical, compare
from tests.e2e import instances_code as code
from tests.e2e.runtime_child import run_in_runtime

BACKENDS = ("export", "eager")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("modes")
    switches, inside = code.mode_switches(), code.forward_switch()
    no_batch = code.no_batch_switches()
    results = {
        "no_batch": padlc.build(no_batch, root / "no_batch", inputs=code.VECTORS),
        "switches": padlc.build(
            switches, root / "switches", inputs=code.VECTORS, backend=list(BACKENDS)
        ),
        "inside": padlc.build(inside, root / "inside", inputs=code.VECTORS, backend="export"),
    }
    jobs = {f"switches-{b}": (results["switches"].path, code.VECTORS, b) for b in BACKENDS}
    jobs["inside"] = (results["inside"].path, code.VECTORS, None)
    jobs["no_batch"] = (results["no_batch"].path, code.VECTORS, None)
    expected = {
        name: {
            "infer": [canonical(pipeline.infer_apply(x)) for x in code.VECTORS],
            "eval": [canonical(y) for y in pipeline.eval_apply(code.VECTORS, batch_size=2)],
        }
        for name, pipeline in (("switches", switches), ("inside", inside), ("no_batch", no_batch))
    }
    return {"results": results, "loaded": run_in_runtime(jobs), "expected": expected}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["infer", "eval"])
def test_each_mode_of_the_artifact_equals_the_eager_pipelines(
    built: dict[str, Any], backend: str, mode: str
) -> None:
    loaded = built["loaded"][f"switches-{backend}"]
    _, problem = compare(loaded[mode], built["expected"]["switches"][mode], 1e-4)
    assert problem is None, f"{backend} {mode}_apply: {problem}"


def test_the_switches_make_infer_and_eval_outputs_differ(built: dict[str, Any]) -> None:
    expected = built["expected"]["switches"]
    _, problem = compare(expected["eval"], expected["infer"], 1e-4)
    assert problem is not None  # else the test above could not tell the modes apart


def test_each_modes_stage_functions_are_recorded_in_the_manifest(built: dict[str, Any]) -> None:
    section = read_manifest(built["results"]["switches"].path).forward
    assert section is not None
    assert section.mode("infer").preprocess == "preprocess"
    assert section.mode("eval").preprocess == "eval_preprocess"
    assert section.mode("eval").postprocess == "eval_postprocess"
    source = (built["results"]["switches"].path / "stages.py").read_text()
    assert "def eval_preprocess(x):" in source and "shout(x)" in source


def test_a_switch_inside_the_forward_makes_the_artifact_refuse_eval_apply(
    built: dict[str, Any],
) -> None:
    loaded = built["loaded"]["inside"]
    _, problem = compare(loaded["infer"], built["expected"]["inside"]["infer"], 1e-4)
    assert problem is None
    error = loaded["eval_error"]
    assert error.startswith("ModeUnavailableError:")
    assert "the forward stage holds `IfInfer(same.relu())`" in error
    assert "move the switch before `batch` or after `unbatch`" in error


def test_the_build_report_says_eval_apply_is_refused(built: dict[str, Any]) -> None:
    notes = " ".join(built["results"]["inside"].notes)
    assert "eval_apply is refused by the artifact" in notes


@pytest.mark.parametrize("mode", ["infer", "eval"])
def test_without_batch_each_mode_runs_its_own_per_item_forward(
    built: dict[str, Any], mode: str
) -> None:
    loaded = built["loaded"]["no_batch"]
    _, problem = compare(loaded[mode], built["expected"]["no_batch"][mode], 1e-4)
    assert problem is None, f"{mode}_apply: {problem}"
    section = read_manifest(built["results"]["no_batch"].path).forward
    assert section is not None and section.mode("eval").forward == "eval_forward"
