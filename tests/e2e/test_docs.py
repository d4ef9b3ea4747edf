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
# What a document builds inside them stays in its scratch folder: the checkout's own build
# folders are not linked (``pip install ./runtime`` writes runtime/build and the egg-info;
# cpp.md's CMake build is runtime/cpp/build, whose cache names the folder it was configured from).
_NOT_LINKED = ("runtime/build", "runtime/padl_runtime.egg-info", "runtime/cpp/build")


def _link(source: Path, target: Path, relative: str) -> None:
    """``target`` stands for ``source``: a link, or, above a folder of ``_NOT_LINKED``, a folder
    of links to its entries."""
    if relative in _NOT_LINKED:
        return
    if not any(own.startswith(f"{relative}/") for own in _NOT_LINKED):
        target.symlink_to(source)
        return
    target.mkdir()
    for entry in sorted(source.iterdir()):
        _link(entry, target / entry.name, f"{relative}/{entry.name}")


def _scratch(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    root.mkdir()
    for name in _LINKED:
        _link(REPO / name, root / name, name)
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
    script.write_text(
        session_script(document, free_port, gpu=_has_gpu(), docker=_has_docker()),
        encoding="utf-8",
    )
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


def _has_gpu() -> bool:
    return torch.cuda.is_available()


def _has_docker() -> bool:
    """Building an image downloads torch and more (minutes): only when asked, with
    ``PADL_DOCS_DOCKER=1``, and where a docker daemon answers."""
    if os.environ.get("PADL_DOCS_DOCKER") != "1" or shutil.which("docker") is None:
        return False
    answer = subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=60)
    return answer.returncode == 0


#: Blocks this machine cannot run, reported as skipped (each where its document says it).
_UNAVAILABLE = [
    block
    for document in DOCUMENTS
    for block in blocks(document)
    if ("gpu" in block.options and not _has_gpu())
    or (block.language == "dockerfile" and not _has_docker())
]


@pytest.mark.parametrize("block", _UNAVAILABLE, ids=lambda b: b.where)
def test_a_block_this_machine_cannot_run_is_reported(block) -> None:
    needs = (
        "a CUDA device"
        if "gpu" in block.options
        else "a docker daemon and PADL_DOCS_DOCKER=1 (building the image downloads torch)"
    )
    pytest.skip(f"{block.where} needs {needs}; its document's other blocks ran")
