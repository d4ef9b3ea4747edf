"""``padlc.cli.resolve``: how the command line finds ``MODULE:ATTR``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from padlc.cli import resolve


@pytest.fixture(autouse=True)
def _own_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """``resolve`` puts the current directory on ``sys.path``, as ``python -m`` would."""
    monkeypatch.setattr(sys, "path", list(sys.path))


def test_missing_module_is_a_plain_error_naming_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as raised:
        resolve("padlc_no_such_module.models:pipeline")
    message = str(raised.value)
    assert "cannot import 'padlc_no_such_module.models'" in message
    assert "PYTHONPATH" in message and "path/to/models.py:ATTR" in message


def test_a_missing_dependency_of_the_module_keeps_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "padlc_cli_needs_dep.py").write_text("import padlc_cli_absent_dependency\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "padlc_cli_needs_dep", raising=False)
    with pytest.raises(ModuleNotFoundError) as raised:
        resolve("padlc_cli_needs_dep:pipeline")
    assert raised.value.name == "padlc_cli_absent_dependency"


def test_missing_attribute_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "padlc_cli_plain.py").write_text("pipeline = 1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SystemExit, match="has no attribute 'pipelin'"):
        resolve("padlc_cli_plain:pipelin")
