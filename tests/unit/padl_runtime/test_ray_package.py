"""``padl_runtime.ray`` without a Ray cluster: what importing it needs, what it says without Ray,
and the error a failing row raises."""

from __future__ import annotations

import pickle
import subprocess
import sys

from padl_runtime.failures import ItemError
from padl_runtime.ray import RowError


def test_importing_padl_runtime_and_its_ray_package_does_not_import_ray() -> None:
    code = (
        "import sys, padl_runtime, padl_runtime.ray\n"
        "from padl_runtime.ray import RowError\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('ray', 'pyarrow', 'pandas')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_ray_predict_and_deployment_say_which_extra_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['ray'] = None  # importing it now raises, as when it is not installed\n"
        "import padl_runtime.ray\n"
        "for name in ('predict', 'deployment'):\n"
        "    function = getattr(padl_runtime.ray, name)\n"
        "    try:\n"
        "        function(None, 'model.padl') if name == 'predict' else function('model.padl')\n"
        "    except ModuleNotFoundError as exc:\n"
        "        assert \"pip install 'padl-runtime[ray]'\" in str(exc), exc\n"
        "    else:\n"
        "        raise AssertionError(name + ' ran without Ray')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_row_error_names_the_input_and_the_transform() -> None:
    failure = ItemError(
        3, "preprocess", "ValueError", "too short", step="parse", location="stages.py:10"
    )
    error = RowError.of([999.0, 1.0], failure, "item", failed=2, rows=256)
    assert str(error).startswith(
        "The row with item=[999.0, 1.0] failed: the preprocess step parse (stages.py:10) raised "
        "ValueError: too short. (2 of the 256 rows given to the actor with it failed.)"
    )
    assert (error.stage, error.step, error.error_type) == ("preprocess", "parse", "ValueError")


def test_row_error_cuts_a_long_input_short() -> None:
    failure = ItemError(0, "forward", "RuntimeError", "bad shape")
    error = RowError.of(list(range(1000)), failure, "item", failed=1, rows=1)
    assert "item=[0, 1, 2, 3, 4, 5, 6, 7, ...]" in str(error) and len(str(error)) < 400


def test_row_error_survives_pickling_with_its_fields() -> None:
    failure = ItemError(0, "postprocess", "KeyError", "'label'", step="answer")
    error = RowError.of({"text": "hi"}, failure, "item", failed=1, rows=4)
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.step == "answer" and copy.item == "{'text': 'hi'}"
