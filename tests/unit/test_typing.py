"""The public API is typed: mypy, run as a user runs it (on a file outside the repository, with
padlc installed the way ``make`` installs it), accepts the README's quick start and correct uses,
and reports each mistake of ``tests/typing/api_usage.py`` with the expected error code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
USAGE = REPO / "tests" / "typing" / "api_usage.py"
EXPECTED = re.compile(r"#\s*error:\s*([\w-]+)\s*$")
REPORTED = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[\w-]+)\]$")

pytestmark = pytest.mark.slow  # mypy follows the imports into torch: tens of seconds


def _quick_start() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Quick start") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[tuple[int, str]]]:
    """mypy's errors per file, ``{file name: {(line, code)}}``, for copies of the usage file
    and of the README's quick start in a folder outside the repository (so that padlc is found
    as installed, not as a folder of the working directory)."""
    folder = tmp_path_factory.mktemp("typing")
    (folder / "api_usage.py").write_text(USAGE.read_text(encoding="utf-8"), encoding="utf-8")
    (folder / "quick_start.py").write_text(_quick_start(), encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file=",  # the user's defaults, not the project's
            "--show-error-codes",
            "--no-error-summary",
            "--cache-dir",
            str(REPO / ".mypy_cache" / "api-usage"),
            "api_usage.py",
            "quick_start.py",
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    errors: dict[str, set[tuple[int, str]]] = {"api_usage.py": set(), "quick_start.py": set()}
    for line in result.stdout.splitlines():
        match = REPORTED.match(line)
        if match:
            errors.setdefault(match["file"], set()).add((int(match["line"]), match["code"]))
        elif ": error:" in line:
            raise AssertionError(f"an error without a code: {line}")
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return errors


def test_the_readme_quick_start_type_checks(
    reported: dict[str, set[tuple[int, str]]],
) -> None:
    assert reported["quick_start.py"] == set()


def test_padlc_is_found_with_its_types_outside_the_repository(
    reported: dict[str, set[tuple[int, str]]],
) -> None:
    codes = {code for _, code in reported["api_usage.py"]}
    assert not codes & {"import-not-found", "import-untyped", "no-any-return"}, codes


def test_correct_uses_pass_and_each_mistake_is_reported_with_its_code(
    reported: dict[str, set[tuple[int, str]]],
) -> None:
    expected = {
        (number, match.group(1))
        for number, line in enumerate(USAGE.read_text(encoding="utf-8").splitlines(), 1)
        if (match := EXPECTED.search(line))
    }
    assert len(expected) >= 10
    assert reported["api_usage.py"] == expected
