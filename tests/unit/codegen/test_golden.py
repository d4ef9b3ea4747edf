"""Generated stage modules are byte-identical to the reviewed golden files (tests/golden/stages).

After an intended change: ``python -m tests.golden.regen`` and review the diff.
"""

from __future__ import annotations

import pytest

from padlc.codegen import environment
from tests.golden.regen import GOLDEN, fixtures, render


@pytest.mark.parametrize("fixture", fixtures(), ids=lambda f: f.name)
def test_generated_stage_module_matches_golden_file(fixture) -> None:
    expected = (GOLDEN / f"{fixture.name}.py").read_text()
    assert render(fixture) == expected, "run `python -m tests.golden.regen` and review the diff"


def test_generation_is_deterministic() -> None:
    fixture = fixtures()[0]
    assert render(fixture) == render(fixture)


def test_templates_reject_undefined_variables() -> None:
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        environment().from_string("{{ missing }}").render()
