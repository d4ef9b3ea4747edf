"""The build's verifying process (``padlc.builder.verify_child``): a module of its own, run as a
script in a process where padlc cannot be imported."""

from __future__ import annotations

import ast
import dataclasses
import enum
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from padlc.builder import verify_child
from padlc.builder.verify_child import NoPadlc, canonical


class Colour(enum.Enum):
    RED = 1


@dataclasses.dataclass
class Prediction:
    label: str
    score: float


def test_canonical_outputs_hold_no_class_of_the_artifact() -> None:
    value = {"p": Prediction("cat", 0.5), "c": Colour.RED, "xs": [1, (2.0, "a")]}
    assert canonical(value) == {
        "p": ("<object>", "Prediction", {"label": "cat", "score": 0.5}),
        "c": ("<enum>", "Colour", "RED"),
        "xs": [1, (2.0, "a")],
    }


def test_importing_padlc_in_the_verifying_process_fails_loudly() -> None:
    with pytest.raises(ImportError, match="generated code must not import padlc"):
        NoPadlc().find_spec("padlc.language")
    assert NoPadlc().find_spec("padl_runtime") is None


def test_the_module_imports_nothing_of_padlc() -> None:
    tree = ast.parse(Path(verify_child.__file__).read_text(encoding="utf-8"))
    imported = [
        alias.name if isinstance(node, ast.Import) else node.module or ""
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    assert not [name for name in imported if name.split(".")[0] == "padlc"], imported


@pytest.mark.slow  # a fresh process
def test_a_failing_load_is_reported_back_not_crashed(tmp_path: Path) -> None:
    inputs, outputs = tmp_path / "inputs.pkl", tmp_path / "outputs.pkl"
    inputs.write_bytes(pickle.dumps([1, 2]))
    result = subprocess.run(
        [
            *(sys.executable, "-I", "-B", verify_child.__file__, json.dumps(sys.path)),
            *(str(tmp_path / "missing.padl"), "eager", str(inputs), str(outputs), "0"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    reported = pickle.loads(outputs.read_bytes())
    assert "ArtifactError" in reported["error"]
