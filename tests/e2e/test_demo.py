"""The built-in demo, end to end, in a reduced size (fewer epochs, one backend)."""

import re
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "padlc",
            "demo",
            "--out",
            str(out),
            "--epochs",
            "5",
            "--backend",
            "export",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout


def test_demo_trains_to_at_least_95_percent(demo_output):
    _, stdout = demo_output
    accuracy = float(re.search(r"test accuracy (\d+\.\d)%", stdout).group(1))
    assert accuracy >= 95.0


def test_demo_prints_the_pipeline_picture(demo_output):
    _, stdout = demo_output
    assert "to_tensor >> batch >> model >> same.softmax(-1) >> unbatch >> to_prediction" in stdout
    assert "preprocess ▲ │ ▼ forward" in stdout


def test_demo_saves_and_builds_artifacts(demo_output):
    out, stdout = demo_output
    assert (out / "digits.padl" / "manifest.json").is_file()
    assert (out / "digits-built.padl" / "forward" / "forward.pt2").is_file()
    assert "backend export: forward/forward.pt2" in stdout  # the inspect output


def test_demo_runtime_accuracy_is_unchanged_without_padlc(demo_output):
    _, stdout = demo_output
    assert re.search(r"export: accuracy \d+\.\d% \(unchanged\); padlc imported: False", stdout)


def test_demo_prints_the_comparison_table(demo_output):
    _, stdout = demo_output
    assert re.search(r"padlc eager\s+\d+\s+\d+\.\d+", stdout)
    assert re.search(r"built, export\s+\d+\s+\d+\.\d+", stdout)
