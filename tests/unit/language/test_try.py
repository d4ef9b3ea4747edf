"""``Try``: PADL's ``try``/``except``/``else``/``finally`` as a transform, eager and generated."""

from __future__ import annotations

from pathlib import Path

import pytest

from padl_runtime.artifact import DirectoryFiles
from padl_runtime.package import ArtifactPackage
from padlc import Try, batch, transform
from padlc.builder.files import STAGE_MODULE, write_stage_module
from padlc.builder.plan import BuildPlan

from .pipelines import plus_one, times_two


@transform
def open_file(filename):
    return open(filename, encoding="utf-8")  # closed by the Try's finally


@transform
def read(file):
    return file.read()


@transform
def close(file):
    file.close()


@transform
def read_number(file):
    return float(file.read())


@transform
def empty(file):
    return ""


def test_catch_transform_gets_the_input_when_the_transform_raises():
    t = Try(transform(lambda x: x / 0), times_two, ZeroDivisionError, plus_one)
    assert (t >> batch).infer_apply(4).item() == 8


def test_else_transform_gets_the_transforms_output():
    t = Try(times_two, plus_one, ValueError, else_transform=plus_one)
    assert (t >> batch).infer_apply(2).item() == 5


def test_finally_transform_gets_the_input_not_the_output():
    seen = []
    t = Try(times_two, plus_one, ValueError, finally_transform=transform(seen.append))
    assert (t >> batch).infer_apply(3).item() == 6
    assert seen == [3]


def test_finally_transform_runs_when_the_exception_is_not_caught():
    seen = []
    t = Try(
        transform(lambda x: x / 0), plus_one, KeyError, finally_transform=transform(seen.append)
    )
    with pytest.raises(ZeroDivisionError):
        (t >> batch).infer_apply(3)
    assert seen == [3]


def test_reading_a_file_returns_its_text_and_closes_it(tmp_path: Path):
    # PADL's documentation example: `open_file >> Try(read, ..., finally_transform=close)`.
    path = tmp_path / "text.txt"
    path.write_text("hello", encoding="utf-8")
    opened = []
    read_from_path = (
        open_file
        >> transform(lambda f: opened.append(f) or f)
        >> Try(read, transform(lambda f: ""), OSError, finally_transform=close)
    )
    assert read_from_path(str(path)) == "hello"
    assert opened[0].closed


def test_the_file_is_closed_when_reading_fails_with_an_uncaught_error(tmp_path: Path):
    path = tmp_path / "text.txt"
    path.write_text("not a number", encoding="utf-8")
    opened = []
    p = (
        open_file
        >> transform(lambda f: opened.append(f) or f)
        >> Try(read_number, empty, OSError, finally_transform=close)
    )
    with pytest.raises(ValueError, match="could not convert"):
        p(str(path))
    assert opened[0].closed


def test_try_takes_a_name_as_padl_did():
    t = Try(times_two, plus_one, ValueError, pd_name="safe_double")
    assert t.pd_name == "safe_double"
    assert repr(t) == "safe_double"


def _generated_preprocess(pipeline, root: Path):
    root.mkdir()
    write_stage_module(BuildPlan(pipeline, move=False), pipeline, root)
    return ArtifactPackage(DirectoryFiles(root)).function(STAGE_MODULE, "preprocess")


def test_generated_code_closes_the_file_after_reading_it(tmp_path: Path):
    preprocess = _generated_preprocess(
        Try(read, empty, OSError, finally_transform=close) >> batch, tmp_path / "built"
    )
    path = tmp_path / "text.txt"
    path.write_text("hello", encoding="utf-8")
    with open(path, encoding="utf-8") as file:
        assert preprocess(file) == "hello"
        assert file.closed


def test_generated_code_closes_the_file_when_the_exception_escapes(tmp_path: Path):
    preprocess = _generated_preprocess(
        Try(read_number, empty, OSError, finally_transform=close) >> batch, tmp_path / "built"
    )
    path = tmp_path / "text.txt"
    path.write_text("not a number", encoding="utf-8")
    with open(path, encoding="utf-8") as file:
        with pytest.raises(ValueError, match="could not convert"):
            preprocess(file)
        assert file.closed


def test_generated_catch_gets_the_input_when_a_later_step_of_the_body_raises(tmp_path: Path):
    body = transform(lambda x: x + 1) >> transform(lambda x: x / 0)
    preprocess = _generated_preprocess(
        Try(body, transform(lambda x: x * 10), ZeroDivisionError) >> batch, tmp_path / "built"
    )
    assert preprocess(2) == 20
