"""The examples run as a user would run them."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_notebook_defines_saves_and_builds_a_pipeline(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    # A subprocess: the kernel's event loop and its warnings stay out of this test process.
    code = (
        "import nbformat, nbclient, sys\n"
        "nb = nbformat.read(sys.argv[1], as_version=4)\n"
        "nbclient.NotebookClient(nb, timeout=300, kernel_name='python3', "
        "resources={'metadata': {'path': sys.argv[2]}}).execute()\n"
        "print(nb.cells[-1].outputs[-1]['data']['text/plain'])\n"
    )
    del nbformat, nbclient
    result = subprocess.run(
        [sys.executable, "-c", code, str(EXAMPLES / "notebook.ipynb"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().startswith("[")


def test_text_classification_example_trains_saves_and_builds(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "text_classification.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = float(re.search(r"accuracy on held-out texts: (\d\.\d+)", result.stdout).group(1))
    assert accuracy >= 0.9
    assert (tmp_path / "sentiment.padl" / "manifest.json").is_file()
    assert (tmp_path / "sentiment-built.padl" / "stages.py").is_file()
