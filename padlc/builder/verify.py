"""Verifying a written artifact in a fresh process that can import ``padl_runtime`` but not ``padlc``.

The child loads the artifact with :func:`padl_runtime.load`, runs every example through
``infer_apply`` and once through ``eval_apply`` (in batches of at most the artifact's
``max_batch``), and sends the outputs back (pickled into a
temporary file outside the artifact). The parent compares them with the eager pipeline's outputs:
exactly for non-float values, within ``tolerance`` for floats. A crash (AOTInductor loads have been
seen to segfault) is a failed verification, never a crashed build.
"""

from __future__ import annotations

import json
import math
import pickle
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from padlc.builder import verify_child
from padlc.builder.verify_child import canonical

__all__ = ["Verification", "canonical", "compare", "verify_artifact"]


@dataclass(frozen=True)
class Verification:
    ok: bool
    max_abs_error: float
    message: str = ""
    load_seconds: float = 0.0
    #: the artifact's infer_apply per example, best of several rounds (when timed)
    infer_seconds: float | None = None


def compare(
    got: Any, want: Any, tolerance: float, where: str = "output"
) -> tuple[float, str | None]:
    """Largest float error and the first mismatch (``None`` when everything matches)."""
    if isinstance(want, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return 0.0, f"{where}: expected a tensor, got {type(got).__name__}"
        if got.shape != want.shape or got.dtype != want.dtype:
            return (
                0.0,
                f"{where}: expected {want.dtype} {tuple(want.shape)}, got {got.dtype} {tuple(got.shape)}",
            )
        if want.is_floating_point() or want.is_complex():
            if want.numel() == 0:
                return 0.0, None
            error = float((got.double() - want.double()).abs().nan_to_num(0.0).max())
            bound = tolerance * (1.0 + float(want.double().abs().nan_to_num(0.0).max()))
            same_nan = bool(torch.equal(got.isnan(), want.isnan()))
            if error > bound or not same_nan:
                return error, f"{where}: differs by {error:.3g} (tolerance {bound:.3g})"
            return error, None
        return 0.0, None if torch.equal(got, want) else f"{where}: values differ"
    if isinstance(want, float) and isinstance(got, float):
        error = abs(got - want) if not (math.isnan(got) and math.isnan(want)) else 0.0
        bound = tolerance * (1.0 + abs(want))
        return error, None if error <= bound else f"{where}: {got!r} != {want!r}"
    if isinstance(want, tuple | list) and isinstance(got, tuple | list):
        if len(got) != len(want) or type(got) is not type(want):
            return (
                0.0,
                f"{where}: expected {type(want).__name__} of {len(want)}, got {type(got).__name__} of {len(got)}",
            )
        worst, problem = 0.0, None
        for i, (g, w) in enumerate(zip(got, want)):
            error, issue = compare(g, w, tolerance, f"{where}[{i}]")
            worst = max(worst, error)
            problem = problem or issue
        return worst, problem
    if isinstance(want, dict) and isinstance(got, dict):
        if list(got) != list(want):
            return 0.0, f"{where}: keys {list(got)} != {list(want)}"
        worst, problem = 0.0, None
        for key in want:
            error, issue = compare(got[key], want[key], tolerance, f"{where}[{key!r}]")
            worst = max(worst, error)
            problem = problem or issue
        return worst, problem
    return 0.0, None if got == want else f"{where}: {got!r} != {want!r}"


def _crash_tail(output: str) -> list[str]:
    """The lines worth reporting from a crashed child's output: faulthandler's report of a native
    crash (the fault and the innermost Python frames) when there is one, else the last 5 lines."""
    lines = [line.strip() for line in output.strip().splitlines()]
    fatal = [i for i, line in enumerate(lines) if line.startswith("Fatal Python error")]
    if not fatal:
        return lines[-5:]
    report = [
        line for line in lines[fatal[-1] :] if line and not line.startswith("Extension modules")
    ]
    return report[:12]


def verify_artifact(
    root: Path,
    backend: str,
    inputs: list[Any],
    expected: list[Any],
    expected_batched: list[Any] | None,
    tolerance: float,
    timeout: float = 600,
    timing: float = 0.0,
) -> Verification:
    """Load ``root`` with ``backend`` in a fresh process and compare its outputs with ``expected``
    (infer_apply) and ``expected_batched`` (eval_apply; ``None``: the artifact must refuse eval
    mode). ``timing``: seconds to spend timing its infer_apply on the examples."""
    with tempfile.TemporaryDirectory(prefix="padlc-verify-") as scratch:
        data_file, out_file = Path(scratch, "inputs.pkl"), Path(scratch, "outputs.pkl")
        with open(data_file, "wb") as handle:
            pickle.dump(inputs, handle)
        command = [
            sys.executable,
            "-I",
            "-B",
            "-X",
            "faulthandler",  # a crash in native code prints the Python stack it happened in
            verify_child.__file__,
            json.dumps(sys.path),
            str(root),
            backend,
            str(data_file),
            str(out_file),
            str(timing),
        ]
        try:
            process = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return Verification(
                False, 0.0, f"the verifying process timed out after {timeout:.0f} s"
            )
        if process.returncode != 0 or not out_file.exists():
            tail = _crash_tail(process.stderr or process.stdout)
            return Verification(
                False,
                0.0,
                f"the verifying process crashed (exit code {process.returncode}): "
                + " | ".join(tail),
            )
        with open(out_file, "rb") as handle:
            result = pickle.load(handle)
    if "error" in result:
        last = result["error"].strip().splitlines()
        return Verification(
            False, 0.0, f"loading or running it failed: {last[-1]}\n{result['error']}"
        )
    if result.get("padlc_imported"):
        return Verification(False, 0.0, "the artifact imported padlc at run time")
    if expected_batched is None and "eval_refused" not in result:
        return Verification(
            False, 0.0, "its eval_apply ran, though the forward was built for infer mode only"
        )
    if expected_batched is not None and "eval_refused" in result:
        return Verification(False, 0.0, f"its eval_apply refused: {result['eval_refused']}")
    worst = 0.0
    checks = [("infer", expected)]
    if expected_batched is not None:
        checks.append(("eval", expected_batched))
    for mode, reference in checks:
        want = [canonical(e) for e in reference]
        error, problem = compare(result[mode], want, tolerance, f"{mode}_apply outputs")
        worst = max(worst, error)
        if problem is not None:
            return Verification(
                False, worst, f"its outputs differ from the eager pipeline's: {problem}"
            )
    return Verification(
        True,
        worst,
        "",
        float(result.get("load_seconds", 0.0)),
        result.get("infer_seconds"),
    )
