"""How padlc is installed: a folder named like the package cannot shadow it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import padl_runtime
import padlc

pytestmark = pytest.mark.slow  # a fresh process


def test_a_folder_named_padlc_beside_the_script_does_not_shadow_the_package(
    tmp_path: Path,
) -> None:
    # The clone itself seen from its parent folder: a `padlc` folder with no __init__.py, which
    # an import hook installed after Python's own path finder would lose to (a namespace package,
    # "cannot import name 'transform' from 'padlc' (unknown location)").
    (tmp_path / "padlc" / "runtime" / "padl_runtime").mkdir(parents=True)
    (tmp_path / "padlc" / "README.md").write_text("a clone\n")
    (tmp_path / "padl_runtime").mkdir()
    script = tmp_path / "script.py"
    script.write_text(
        "from padlc import transform\nimport padlc, padl_runtime\n"
        "print(padlc.__file__)\nprint(padl_runtime.__file__)\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [padlc.__file__, padl_runtime.__file__]
