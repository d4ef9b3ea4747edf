"""Generated stage code calls the user's functions as the eager pipeline does."""

from __future__ import annotations

from pathlib import Path

from padl_runtime.artifact import DirectoryFiles
from padl_runtime.package import ArtifactPackage
from padlc import batch, transform
from padlc.builder.files import STAGE_MODULE, write_stage_module
from padlc.builder.plan import BuildPlan


@transform
def pair(x):
    return (x, x * 2)


@transform
def plus_default(a, b=10):
    return a + b


def test_a_tuple_is_unpacked_into_a_function_whose_second_parameter_has_a_default(
    tmp_path: Path,
) -> None:
    pipeline = pair >> plus_default >> batch
    write_stage_module(BuildPlan(pipeline, move=False), pipeline, tmp_path)
    preprocess = ArtifactPackage(DirectoryFiles(tmp_path)).function(STAGE_MODULE, "preprocess")
    assert preprocess(3) == (pair >> plus_default)(3) == 3 + 6
