"""What capture makes of objects: the generated source, plain code, and errors for what it cannot save."""

from __future__ import annotations

import runpy
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import padlc
from padlc import SaveError, batch, same, transform, unbatch
from padlc.capture import capture_pipeline, capture_plain
from padlc.capture.source import function_snippet, global_names

USED: object = None  # set by the tests below to the object a transform refers to
LOCK = threading.Lock()
GENERATOR = (i for i in range(3))
SCALE = 3


def _generated(p: padlc.Transform, root: Path) -> str:
    return capture_pipeline(p, root).source


def test_lambdas_on_one_line_are_told_apart() -> None:
    first, second = (lambda x: x + 1), (lambda y: y * 2)
    assert function_snippet(first).source == "lambda x: x + 1"
    assert function_snippet(second).source == "lambda y: y * 2"
    same_args = [lambda x: x - 1, lambda x: x - 2]
    assert [function_snippet(f).source for f in same_args] == ["lambda x: x - 1", "lambda x: x - 2"]


def test_global_names_leave_out_locals_and_arguments() -> None:
    code = "def f(x, y=DEFAULT):\n    z = helper(x)\n    return [z + w for w in ITEMS]\n"
    assert global_names(code) == ["DEFAULT", "ITEMS", "helper"]


@pytest.mark.parametrize(
    ("obj", "words"),
    [("file", "open file"), (GENERATOR, "generator"), (LOCK, "lock")],
)
def test_uncapturable_values_raise_save_error_naming_object_and_transform(
    tmp_path: Path, obj, words
) -> None:
    if obj == "file":
        with open(__file__) as handle:
            _check_uncapturable(tmp_path, handle, words)
    else:
        _check_uncapturable(tmp_path, obj, words)


def _check_uncapturable(tmp_path: Path, obj, words) -> None:
    fn = eval("lambda x: (OBJ, x)[1]", {"OBJ": obj})
    with pytest.raises(SaveError, match="not available"):
        _generated(transform(fn), tmp_path)

    def uses(x):
        return (x, USED)[0]

    globals()["USED"] = obj
    with pytest.raises(SaveError) as info:
        _generated(transform(uses), tmp_path)
    message = str(info.value)
    assert type(obj).__name__ in message or words in message
    assert "`USED`" in message  # the global the function reads it through
    assert "uses" in message and "test_capture.py" in message
    assert "value(" in message or "inside" in message


def test_an_object_whose_statement_reads_it_again_is_refused_naming_it(tmp_path: Path) -> None:
    # `fh = files["log"]` rebuilds `fh` from `files`, which holds `fh` itself: no route, and a
    # SaveError naming the global, not an endless recursion.
    script = tmp_path / "user.py"
    script.write_text(
        "from padlc import transform\n"
        "files = {}\n"
        f"files['log'] = open({str(tmp_path / 'log.txt')!r}, 'w')\n"
        "fh = files['log']\n"
        "@transform\n"
        "def write(x):\n"
        "    fh.write(str(x))\n"
        "    return x\n"
    )
    namespace = runpy.run_path(str(script))
    try:
        with pytest.raises(SaveError, match=r"Cannot save `fh` .*open file.*function write"):
            _generated(namespace["write"], tmp_path / "out")
    finally:
        namespace["fh"].close()


def test_socket_is_refused(tmp_path: Path) -> None:
    with socket.socket() as sock:
        globals()["USED"] = sock

        def uses(x):
            return USED and x

        with pytest.raises(SaveError, match="socket"):
            _generated(transform(uses), tmp_path)


def test_values_are_saved_as_they_are_now(tmp_path: Path) -> None:
    items = [1]

    def show(x):
        return [*items, x]

    items.append(2)
    source = _generated(transform(show), tmp_path)
    assert "show = _make_show([1, 2])" in source  # a closure cell, by its current value


def test_value_forces_a_data_file_and_arrays_are_npy(tmp_path: Path) -> None:
    small = padlc.value({"a": 1})
    array = np.arange(3)

    def use(x):
        return small[x] + array[0]

    source = _generated(transform(use), tmp_path)
    assert "value(load_json(__file__, 'data/small.json'))" in source
    assert (tmp_path / "data" / "array.npy").is_file()
    with pytest.raises(TypeError, match="value\\(\\) saves"):
        padlc.value(object())


def test_param_is_overridable_and_unknown_names_are_listed(tmp_path: Path) -> None:
    limit = padlc.param("limit", 3)

    def clip(x):
        return min(x, limit)

    path = padlc.save(transform(clip), tmp_path / "p")
    assert padlc.load(path)(10) == 3
    assert padlc.load(path, params={"limit": 5})(10) == 5
    with pytest.raises(ValueError, match="limit"):
        padlc.load(path, params={"limt": 5})


def test_plain_capture_has_no_padlc_and_loads_weights(tmp_path: Path) -> None:
    @transform
    def prepare(x):
        return torch.tensor(x, dtype=torch.float32) * SCALE

    layer = transform(torch.nn.Linear)(2, 2)
    p = prepare >> batch >> layer >> unbatch >> same.sum()
    captured = capture_plain([prepare, layer, batch], tmp_path, "stages")
    assert "import padlc" not in captured.source and "from padlc" not in captured.source
    assert "@transform" not in captured.source
    assert set(captured.names) == {id(prepare), id(layer)}
    (tmp_path / "stages.py").write_text(captured.source)
    namespace = runpy.run_path(str(tmp_path / "stages.py"))
    plain_layer = eval(captured.names[id(layer)], namespace)
    plain_prepare = eval(captured.names[id(prepare)], namespace)
    assert not isinstance(plain_layer, padlc.Transform)
    with torch.no_grad():
        assert torch.allclose(
            plain_layer(plain_prepare([1.0, 2.0])).sum(), p.infer_apply([1.0, 2.0])
        )


def test_generated_module_keeps_the_pipeline_expression(tmp_path: Path) -> None:
    @transform
    def inc(x):
        return x + 1

    source = _generated((inc >> inc) + (inc - "again") / inc, tmp_path)
    assert source.rstrip().splitlines()[-1].startswith("_pd_main = ")
    namespace = runpy.run_path(str(tmp_path / "pipeline.py"))
    assert repr(namespace["_pd_main"]) == repr((inc >> inc) + (inc - "again") / inc)


def test_plain_capture_sets_attributes_changed_after_construction(tmp_path: Path) -> None:
    @transform
    class Table:
        def __init__(self):
            self.entries = {}

        def __call__(self, key):
            return self.entries[key]

    table = Table()
    table.entries["a"] = 1
    captured = capture_plain([table], tmp_path, "stages")
    (tmp_path / "stages.py").write_text(captured.source)
    namespace = runpy.run_path(str(tmp_path / "stages.py"))
    assert eval(captured.names[id(table)], namespace)("a") == 1


def test_rebuilding_for_the_state_check_leaves_random_streams_alone(tmp_path: Path) -> None:
    layer = transform(torch.nn.Linear)(2, 2)
    torch.manual_seed(3)
    expected = torch.rand(1)
    torch.manual_seed(3)
    _generated(layer, tmp_path)
    assert torch.equal(torch.rand(1), expected)


def test_requirement_pins_use_public_versions() -> None:
    from padlc.capture.installed import distribution_pins

    pins = distribution_pins({"torch", "numpy", "json"})
    assert pins["torch"] == torch.__version__.split("+")[0]
    assert "+" not in "".join(pins.values())
    assert "json" not in pins  # the standard library is not pinned


def test_locals_of_a_function_named_top_are_not_taken_for_globals() -> None:
    # CPython's symtable treats any table named "top" as the module's.
    source = "def top(p):\n    score, index = p.max(-1)\n    return index, OTHER\n"
    assert global_names(source) == ["OTHER"]


def test_a_variable_bound_again_after_the_save_is_saved_by_the_statement_that_ran(
    tmp_path: Path,
) -> None:
    # A script or a notebook session binding the name again further down: the assignment before
    # `transform(model)` made the object.
    out = tmp_path / "model.padl"
    script = tmp_path / "session.py"
    script.write_text(
        "import padlc\n"
        "from padlc import transform\n"
        "from torch import nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self, hidden):\n"
        "        super().__init__()\n"
        "        self.linear = nn.Linear(4, hidden)\n"
        "    def forward(self, x):\n"
        "        return self.linear(x)\n"
        "model = Net(2)\n"
        f"padlc.save(transform(model), {str(out)!r})\n"
        "model = nn.Linear(3, 4)\n"
    )
    runpy.run_path(str(script))
    assert "model = Net(2)\n" in (out / "pipeline.py").read_text()
