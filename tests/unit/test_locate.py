"""`padlc build pl`: finding the pipeline and the examples a command line names."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from padlc.locate import locate_inputs, locate_pipeline

HEADER = "from padlc import batch, transform, unbatch\n"


@pytest.fixture(autouse=True)
def _own_imports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)


def _module(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(HEADER + body)
    sys.modules.pop(name, None)
    return path


def test_a_modules_only_pipeline_is_found_by_the_module_name(tmp_path: Path) -> None:
    _module(
        tmp_path,
        "padlc_locate_only",
        "prep = transform(lambda x: x)\nmodel = transform(abs)\n"
        "pl = prep >> batch >> model >> unbatch\n",
    )
    pipeline, module = locate_pipeline("padlc_locate_only")
    assert pipeline is module.pl


def test_a_py_path_names_the_module_too(tmp_path: Path) -> None:
    path = _module(tmp_path, "padlc_locate_path", "pl = transform(lambda x: x) >> batch\n")
    pipeline, module = locate_pipeline(str(path))
    assert pipeline is module.pl


def test_the_variable_named_pipeline_wins_over_other_candidates(tmp_path: Path) -> None:
    _module(
        tmp_path,
        "padlc_locate_named",
        "a = transform(lambda x: x)\nb = transform(abs)\npipeline = transform(round)\n",
    )
    pipeline, module = locate_pipeline("padlc_locate_named")
    assert pipeline is module.pipeline


def test_several_pipelines_are_listed_with_how_to_choose(tmp_path: Path) -> None:
    _module(tmp_path, "padlc_locate_many", "a = transform(lambda x: x)\nb = transform(abs)\n")
    with pytest.raises(SystemExit) as raised:
        locate_pipeline("padlc_locate_many")
    assert str(raised.value) == (
        "padlc: padlc_locate_many defines several pipelines (a, b): choose one as "
        "padlc_locate_many:a, or name the one to build `pipeline`."
    )


def test_a_module_without_a_pipeline_says_how_to_name_one(tmp_path: Path) -> None:
    _module(tmp_path, "padlc_locate_none", "x = 1\n")
    with pytest.raises(SystemExit, match="defines no pipeline"):
        locate_pipeline("padlc_locate_none")


def test_module_colon_attr_keeps_working(tmp_path: Path) -> None:
    _module(tmp_path, "padlc_locate_attr", "a = transform(lambda x: x)\nb = transform(abs)\n")
    pipeline, module = locate_pipeline("padlc_locate_attr:b")
    assert pipeline is module.b


def test_examples_default_to_the_modules_example_inputs(tmp_path: Path) -> None:
    _module(tmp_path, "padlc_locate_ex", "pl = transform(abs)\nexample_inputs = [1, 2]\n")
    _, module = locate_pipeline("padlc_locate_ex")
    assert locate_inputs(None, module, "padlc_locate_ex") == [1, 2]


def test_inputs_may_name_an_attribute_of_the_pipelines_module(tmp_path: Path) -> None:
    _module(tmp_path, "padlc_locate_attr_ex", "pl = transform(abs)\nmine = [3, 4]\n")
    _, module = locate_pipeline("padlc_locate_attr_ex")
    assert locate_inputs("mine", module, "padlc_locate_attr_ex") == [3, 4]


def test_missing_examples_say_both_ways_to_give_them(tmp_path: Path) -> None:
    _module(tmp_path, "padlc_locate_no_ex", "pl = transform(abs)\n")
    _, module = locate_pipeline("padlc_locate_no_ex")
    with pytest.raises(SystemExit) as raised:
        locate_inputs(None, module, "padlc_locate_no_ex")
    message = str(raised.value)
    assert "--inputs MODULE:ATTR" in message and "example_inputs = [item1, item2, ...]" in message
