"""The ``serve`` command's arguments, shared by ``padlc serve`` and ``python -m padl_runtime serve``."""

from __future__ import annotations

import argparse

import pytest

from padl_runtime.__main__ import main as runtime_main
from padl_runtime.serve.cli import add_arguments, options_from
from padlc.cli import main as padlc_main

OPTIONS = ("--host", "--port", "--max-batch", "--max-wait-ms", "--workers", "--device",
           "--backend", "--max-queue", "--timeout")  # fmt: skip


@pytest.mark.parametrize("main", [padlc_main, runtime_main])
def test_both_commands_take_every_serve_option(main, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = capsys.readouterr().out
    assert all(option in text for option in OPTIONS)


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["model.padl", *argv])


def test_device_and_backend_go_to_the_loader() -> None:
    options = options_from(
        _parse("--device", "cpu", "--backend", "torchscript", "--max-batch", "8")
    )
    assert options.load_options == {"device": "cpu", "backend": "torchscript"}
    assert options.max_batch == 8 and options.host == "127.0.0.1"


def test_trust_options_go_to_the_loader(tmp_path) -> None:
    a, b = tmp_path / "a.pub", tmp_path / "b.pub"
    a.touch()
    b.touch()
    options = options_from(_parse("--trust-code", "--trusted-key", str(a), "--trusted-key", str(b)))
    assert options.load_options == {"trust_code": True, "trusted_keys": [str(a), str(b)]}


def test_a_trusted_key_that_is_not_a_file_is_a_usage_error(tmp_path, capsys) -> None:
    absent = tmp_path / "team"
    assert runtime_main(["serve", "model.padl", "--trusted-key", str(absent)]) == 2
    err = capsys.readouterr().err
    assert f"--trusted-key {absent}: no such file" in err and "the .pub one" in err


def test_other_load_options_pass_through() -> None:
    args = _parse()
    args.load_options = {"trust_code": True}  # what a command adding its own option does
    assert options_from(args).load_options == {"trust_code": True}


def test_an_impossible_option_is_a_usage_error(capsys) -> None:
    assert runtime_main(["serve", "model.padl", "--max-batch", "0"]) == 2
    assert "max_batch must be at least 1" in capsys.readouterr().err


def test_a_missing_artifact_is_an_error_naming_it(tmp_path, capsys) -> None:
    assert padlc_main(["serve", str(tmp_path / "absent.padl")]) == 1
    assert "absent.padl" in capsys.readouterr().err
