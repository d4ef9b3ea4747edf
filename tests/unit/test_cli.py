"""``padlc.cli``: how the command line finds ``MODULE:ATTR``, and how ``padlc build`` fails."""

from __future__ import annotations

import errno
import sys
from pathlib import Path

import pytest

import padlc
from padlc.cli import COMMANDS, main, resolve


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


def _build_cli(tmp_path: Path, name: str, source: str) -> int:
    """``padlc build`` in this process on a module holding ``pipeline`` and ``examples``."""
    module = tmp_path / f"{name}.py"
    module.write_text(source)
    return main(
        ["build", f"{module}:pipeline", "-o", str(tmp_path / "x"), "--inputs", f"{module}:examples"]
    )


def test_build_of_something_that_is_not_a_pipeline_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _build_cli(tmp_path, "padlc_cli_not_a_pipeline", "pipeline = 42\nexamples = [1, 2]\n")
    assert code == 1
    assert capsys.readouterr().err.startswith(
        "padlc build failed: BuildError: padlc.build needs a padlc pipeline"
    )


def test_build_reports_an_os_error_while_writing_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.padl"))

    monkeypatch.setattr("padlc.builder.build", disk_full)
    code = _build_cli(tmp_path, "padlc_cli_any", "pipeline = examples = None\n")
    assert code == 1
    assert capsys.readouterr().err.startswith(
        "padlc build failed: OSError: [Errno 28] No space left on device"
    )


def test_build_help_says_the_output_gets_the_padl_suffix(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["build", "--help"])
    assert "-o out/model writes out/model.padl" in " ".join(capsys.readouterr().out.split())


@pytest.mark.slow  # builds an artifact
def test_build_of_a_module_name_finds_its_pipeline_and_example_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "padlc_cli_pl.py").write_text(
        "import torch\n"
        "from padlc import batch, transform, unbatch\n"
        "def to_tensor(x):\n    return torch.tensor(x, dtype=torch.float32)\n"
        "torch.manual_seed(0)\n"
        "model = transform(torch.nn).Linear(2, 1)\n"
        "pl = transform(to_tensor) >> batch >> model >> unbatch\n"
        "example_inputs = [[1.0, 2.0], [3.0, 4.0]]\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "padlc_cli_pl", raising=False)
    code = main(["build", "padlc_cli_pl", "-o", "model.padl", "--backend", "torchscript"])
    assert code == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith(
        f"built {tmp_path / 'model.padl'} with backend 'torchscript'"
    )


def test_padlc_alone_prints_the_help_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("usage: padlc")
    assert "padlc build pl -o model.padl" in shown
    for name in COMMANDS:
        assert name in shown


def test_version_names_padlc_the_runtime_and_torch(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["--version"])
    assert raised.value.code == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"padlc {padlc.__version__} (padl-runtime ")
    assert "torch " in shown


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_help_shows_examples_of_that_command(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([name, "--help"])
    shown = capsys.readouterr().out
    examples = shown[shown.index("\nexamples:\n") :].splitlines()[2:]
    assert any(line.startswith(f"  padlc {name} ") for line in examples), shown


def test_padl_runtime_alone_prints_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    from padl_runtime.__main__ import main as runtime_main

    assert runtime_main([]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("usage: padl-runtime")
    assert "padl-runtime serve model.padl" in shown


def test_padl_runtime_serve_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    from padl_runtime.__main__ import main as runtime_main

    with pytest.raises(SystemExit):
        runtime_main(["serve", "--help"])
    assert "\nexamples:\n  padl-runtime serve model.padl --port 8000" in capsys.readouterr().out


@pytest.mark.slow  # a fresh process
def test_the_installed_command_alone_prints_help_in_a_fresh_process() -> None:
    import shutil
    import subprocess

    command = shutil.which("padlc", path=str(Path(sys.executable).parent))
    assert command is not None, "the padlc console script is installed beside this Python"
    result = subprocess.run([command], capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: padlc")
