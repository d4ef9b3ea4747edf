"""Regenerate the golden stage modules: ``python -m tests.golden.regen`` (then review the diff)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from padlc.builder.files import STAGE_MODULE, write_stage_module
from padlc.builder.plan import BuildPlan
from tests.e2e.pipelines import FIXTURES, NO_BATCH

GOLDEN = Path(__file__).parent / "stages"


def render(fixture) -> str:
    """The generated stages.py of one fixture (as `padlc build` writes it)."""
    pipeline = fixture.make()
    with tempfile.TemporaryDirectory() as scratch:
        write_stage_module(BuildPlan(pipeline, move=True), pipeline, Path(scratch))
        return (Path(scratch) / STAGE_MODULE).read_text()


def fixtures():
    return (*FIXTURES, NO_BATCH)


def main() -> None:
    GOLDEN.mkdir(exist_ok=True)
    for fixture in fixtures():
        (GOLDEN / f"{fixture.name}.py").write_text(render(fixture))
        print(f"wrote {GOLDEN / fixture.name}.py")


if __name__ == "__main__":
    main()
