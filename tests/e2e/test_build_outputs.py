"""Built artifacts whose outputs are the user's own objects: verified by their type and state."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import padlc
from tests.e2e import output_code


def test_a_postprocess_returning_a_dataclass_and_an_enum_builds_and_verifies(
    tmp_path: Path,
) -> None:
    result = padlc.build(
        output_code.pipeline, tmp_path / "out.padl", inputs=output_code.examples, backend="eager"
    )
    assert result.backends == ("eager",)
    code = (
        "import padl_runtime\n"
        f"out = padl_runtime.load({str(result.path)!r}).infer_apply(-2.0)\n"
        "print(type(out).__name__, out.sign.name)"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert shown.stdout.split() == ["Prediction", output_code.pipeline.infer_apply(-2.0).sign.name]


@pytest.mark.parametrize("backend", ["eager", "export"])
def test_without_unbatch_built_infer_apply_keeps_the_batch_axis_as_eager_does(
    tmp_path: Path, backend: str
) -> None:
    result = padlc.build(
        output_code.unbatched, tmp_path / "out.padl", inputs=output_code.examples, backend=backend
    )
    code = (
        "import padl_runtime\n"
        f"p = padl_runtime.load({str(result.path)!r})\n"
        "print(tuple(p.infer_apply(-2.0).shape), [tuple(o.shape) for o in p.eval_apply([1.0, 2.0])])"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    eager = output_code.unbatched
    assert shown.stdout.strip() == (
        f"{tuple(eager.infer_apply(-2.0).shape)} "
        f"{[tuple(o.shape) for o in eager.eval_apply([1.0, 2.0])]}"
    )
    assert tuple(eager.infer_apply(-2.0).shape) == (1, 2)
