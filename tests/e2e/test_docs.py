"""The documentation's code blocks run as written (the conventions: tests/docs_blocks.py).

Each document runs as one session in a scratch folder: its python blocks as one script, its
shell blocks where the session has got to, with the project's environment activated."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import torch

from tests.docs_blocks import DOCUMENTS, REPO, blocks, session_script
from tests.e2e.serving import free_port

# The checkout's top-level entries a document may name by a relative path (as a reader does
# from the checkout's root); its Python packages come from the installed padlc and PYTHONPATH.
_LINKED = (".venv", "runtime", "benchmarks", "examples", "tests", "Makefile", "pyproject.toml")


def _scratch(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    root.mkdir()
    for name in _LINKED:
        (root / name).symlink_to(REPO / name)
    return root


@pytest.fixture(scope="session")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with torch and nothing of padlc, for ``venv`` blocks."""
    root = tmp_path_factory.mktemp("docs-venv") / "venv"
    venv.EnvBuilder(with_pip=True).create(root)
    torch_pin = f"torch=={torch.__version__.split('+')[0]}"
    subprocess.run(
        [root / "bin" / "python", "-m", "pip", "install", "--quiet", torch_pin],
        check=True,
        capture_output=True,
    )
    return root


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: str(d.relative_to(REPO)))
def test_the_code_blocks_of_a_document_run_as_written(
    document: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    found = blocks(document)
    if not any(b.language in ("python", "bash", "cpp", "cmake", "dockerfile") for b in found):
        pytest.skip(f"{document.relative_to(REPO)} has no code to run")
    root = _scratch(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if any("venv" in b.options for b in found):
        env["PADL_DOCS_VENV"] = str(request.getfixturevalue("fresh_venv"))
    script = root / "docs_session.py"
    script.write_text(session_script(document, free_port()), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    assert result.returncode == 0, (
        f"{document.relative_to(REPO)} ({script}):\n{result.stdout[-3000:]}\n"
        f"{result.stderr[-6000:]}"
    )


_NEEDS = [
    block
    for document in DOCUMENTS
    for block in blocks(document)
    if "gpu" in block.options or block.language == "dockerfile"
]


@pytest.mark.parametrize("block", _NEEDS, ids=lambda b: b.where)
def test_a_block_needing_a_gpu_or_docker_runs_where_there_is_one(block, tmp_path: Path) -> None:
    if block.language == "dockerfile":
        if shutil.which("docker") is None:
            pytest.skip(f"{block.where}: needs docker to build the image")
        pytest.skip(f"{block.where}: building an image is left to its document's reader")
    if not torch.cuda.is_available():
        pytest.skip(f"{block.where}: needs a CUDA device")
    root = _scratch(tmp_path)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.code],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]
