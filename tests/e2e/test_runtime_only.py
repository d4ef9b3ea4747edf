"""padl-runtime on its own: installed into a fresh virtual environment without padlc, it loads a
built artifact, runs it and serves it.

The environment gets torch (the same version as here, from pip's usual sources: on the project's
CPU machines the local CPU wheel) and ``pip install runtime[serve]`` from this checkout, built as
a wheel like any other package: no editable install, no path to this checkout's sources.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import venv
from pathlib import Path

import httpx
import pytest
import torch

import padl_runtime
import padlc
from tests.e2e.serve_code import ITEMS, make_pipeline
from tests.e2e.serving import REPO, serving

pytestmark = pytest.mark.slow


def _run(*argv: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, cwd=cwd, check=False
    )
    assert result.returncode == 0, f"{argv}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fresh environment's Python."""
    root = tmp_path_factory.mktemp("runtime-only") / "venv"
    venv.EnvBuilder(with_pip=True).create(root)
    python = root / "bin" / "python"
    _run(python, "-m", "pip", "install", "--quiet", f"torch=={torch.__version__.split('+')[0]}")
    # built from a copy: building in place would leave build/ and *.egg-info in the checkout
    source = root.parent / "padl-runtime-source"
    shutil.copytree(
        REPO / "runtime",
        source,
        ignore=shutil.ignore_patterns("build", "cpp", "*.egg-info", "__pycache__"),
    )
    _run(python, "-m", "pip", "install", "--quiet", f"{source}[serve]", cwd=root)
    return python


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("runtime-only-artifact") / "model.padl"
    return padlc.build(make_pipeline(), target, inputs=ITEMS[:4], backend="export").path


def test_the_fresh_environment_has_the_runtime_and_not_padlc(fresh: Path) -> None:
    code = "import importlib.util as u; print(u.find_spec('padlc'), u.find_spec('padl_runtime').origin)"
    found, origin = _run(fresh, "-c", code, cwd=fresh.parent).split()
    assert found == "None"
    assert str(REPO) not in origin  # installed from a wheel, not from this checkout


def test_a_built_artifact_requires_padl_runtime_not_padlc(artifact: Path, fresh: Path) -> None:
    pins = [
        line
        for line in (artifact / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert f"padl-runtime=={padl_runtime.__version__}" in pins
    assert not [p for p in pins if p.startswith("padlc")]
    # everything it asks for is what the fresh environment has
    _run(
        fresh, "-m", "pip", "install", "--quiet", "--no-index", "-r", artifact / "requirements.txt"
    )


def test_the_runtime_alone_loads_and_runs_the_artifact(artifact: Path, fresh: Path) -> None:
    code = (
        "import json, sys, padl_runtime\n"
        "p = padl_runtime.load(sys.argv[1])\n"
        "out = p.infer_apply(json.loads(sys.argv[2]))\n"
        "print(json.dumps({'label': out['label'], 'scores': out['scores'].tolist()}))\n"
    )
    printed = _run(fresh, "-c", code, artifact, json.dumps(ITEMS[5]), cwd=artifact.parent)
    got = json.loads(printed)
    want = padl_runtime.load(artifact).infer_apply(ITEMS[5])
    assert got["label"] == want["label"]
    assert torch.allclose(torch.tensor(got["scores"]), want["scores"], atol=1e-6)


def test_the_runtime_alone_serves_the_artifact(artifact: Path, fresh: Path) -> None:
    want = padl_runtime.load(artifact).infer_apply(ITEMS[6])
    command = (str(fresh.parent / "padl-runtime"), "serve")
    with serving(artifact, command=command) as server:
        response = httpx.post(f"{server.url}/predict", json={"input": ITEMS[6]}, timeout=30)
        assert response.status_code == 200
        assert response.json()["output"]["label"] == want["label"]


def test_the_server_modules_import_without_padlc(fresh: Path) -> None:
    code = (
        "import sys, padl_runtime.serve.app, padl_runtime.serve.server, padl_runtime.__main__\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'padlc']\n"
    )
    _run(fresh, "-c", code, cwd=fresh.parent)
