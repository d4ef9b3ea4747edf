"""Helpers for save/load round trips in fresh processes: the user's code is a real file that is
deleted before loading, and loading runs from another working directory with ``torch.load``
disabled (loading must never unpickle)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

PYTHON = sys.executable

# Appended to the user's script: saves every CASES entry and records the outputs.
SAVE_HARNESS = """

def _pd_apply(pipe, x):
    return pipe.infer_apply(x) if pipe._pd_needs_mode() else pipe(x)

if __name__ == "__main__":
    import json as _json, os as _os, padlc as _padlc
    _out = _os.environ["PADLC_TEST_OUT"]
    _expected = {}
    for _name, (_pipe, _inputs) in CASES.items():
        _padlc.save(_pipe, _os.path.join(_out, _name))
        _expected[_name] = {"inputs": _inputs, "outputs": [repr(_pd_apply(_pipe, x)) for x in _inputs]}
    with open(_os.path.join(_out, "expected.json"), "w") as _f:
        _json.dump(_expected, _f)
"""

LOAD_SCRIPT = """
import json, os, sys
import torch

def _forbidden(*args, **kwargs):
    raise AssertionError("torch.load was called while loading a .padl artifact")

torch.load = _forbidden
import padlc

out = os.environ["PADLC_TEST_OUT"]
params = json.loads(os.environ.get("PADLC_TEST_PARAMS", "{}"))
expected = json.load(open(os.path.join(out, "expected.json")))
got = {}
for name, case in expected.items():
    pipe = padlc.load(os.path.join(out, name + ".padl"), params=params.get(name))
    apply = (lambda x: pipe.infer_apply(x)) if pipe._pd_needs_mode() else pipe
    got[name] = [repr(apply(x)) for x in case["inputs"]]
print("RESULT" + json.dumps(got))
"""


def run_python(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None
) -> str:
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(
        [PYTHON, *args],
        cwd=cwd,
        env=full_env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise AssertionError(f"python {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def save_in_subprocess(tmp_path: Path, script: str, modules: dict[str, str] | None = None) -> Path:
    """Write the user's script (+ local modules) to tmp_path/src, run it to save CASES into
    tmp_path/out, then delete the sources. Returns the output directory."""
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    for name, text in (modules or {}).items():
        (src / name).write_text(textwrap.dedent(text))
    (src / "user.py").write_text(textwrap.dedent(script) + SAVE_HARNESS)
    run_python(["user.py"], cwd=src, env={"PADLC_TEST_OUT": str(out)})
    shutil.rmtree(src)
    return out


def load_in_subprocess(
    tmp_path: Path, out: Path, params: dict[str, Any] | None = None
) -> dict[str, list[str]]:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    env = {"PADLC_TEST_OUT": str(out), "PADLC_TEST_PARAMS": json.dumps(params or {})}
    stdout = run_python(["-c", LOAD_SCRIPT], cwd=elsewhere, env=env)
    line = next(ln for ln in stdout.splitlines() if ln.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])  # type: ignore[no-any-return]


def expected_outputs(out: Path) -> dict[str, list[str]]:
    data = json.loads((out / "expected.json").read_text())
    return {name: case["outputs"] for name, case in data.items()}


# Appended to a script that defines REFUSED = {name: pipeline}: prints the SaveError of each save.
REFUSE_HARNESS = """

if __name__ == "__main__":
    import json as _json, os as _os, padlc as _padlc
    _out = _os.environ["PADLC_TEST_OUT"]
    _errors = {}
    for _name, _pipe in REFUSED.items():
        try:
            _padlc.save(_pipe, _os.path.join(_out, _name))
        except _padlc.SaveError as _e:
            _errors[_name] = str(_e)
    print("ERRORS" + _json.dumps(_errors))
"""


def save_errors_in_subprocess(tmp_path: Path, script: str) -> dict[str, str]:
    """Run a script defining ``REFUSED`` and return the SaveError message of each entry (entries
    that saved are missing)."""
    src = tmp_path / "refused"
    src.mkdir()
    (src / "user.py").write_text(textwrap.dedent(script) + REFUSE_HARNESS)
    stdout = run_python(["user.py"], cwd=src, env={"PADLC_TEST_OUT": str(src)})
    line = next(ln for ln in stdout.splitlines() if ln.startswith("ERRORS"))
    return json.loads(line[len("ERRORS") :])  # type: ignore[no-any-return]


_IPYTHON_RUNNER = (
    "import json, sys\nfrom IPython.core.interactiveshell import InteractiveShell\n"
    "shell = InteractiveShell.instance()\n"
    "for cell in json.loads(sys.stdin.read()):\n"
    "    shell.run_cell(cell, store_history=True).raise_error()\n"
)


def last_line_of_ipython_cells(tmp_path: Path, cells: list[str]) -> str:
    """Run ``cells`` one by one in a fresh IPython shell (as a notebook kernel would); the last
    line it printed."""
    pytest.importorskip("IPython")
    out = run_python(["-c", _IPYTHON_RUNNER], cwd=tmp_path, stdin=json.dumps(cells))
    return out.strip().splitlines()[-1]
