"""What the generated modules say besides the code: where each step comes from, and the eager
forward's ``to_device``."""

from __future__ import annotations

from pathlib import Path

from padlc import batch, transform, unbatch
from padlc.builder.files import STAGE_MODULE, write_stage_module
from padlc.builder.plan import BuildPlan
from padlc.codegen import FunctionView, ModuleView, render_module


@transform
def shout(text):
    return text.upper()


def test_each_generated_call_names_the_line_its_transform_was_created_on(tmp_path: Path) -> None:
    exclaim = transform(lambda text: text + "!")
    pipeline = shout >> exclaim >> batch >> unbatch
    write_stage_module(BuildPlan(pipeline, move=False), pipeline, tmp_path)
    source = (tmp_path / STAGE_MODULE).read_text()
    assert f"x = shout(x)  # test_render.py:{shout._pd_location[1]}" in source
    assert f"  # test_render.py:{exclaim._pd_location[1]}\n" in source


def _module(layers: tuple[str, ...]) -> str:
    view = ModuleView(
        header=("header",),
        docstring="doc",
        imports=(),
        functions=(FunctionView("forward", "x", ("return x",)),),
        device_layers=layers,
    )
    return render_module(view)


def test_an_eager_forward_moves_its_layers_with_to_device() -> None:
    namespace: dict[str, object] = {}
    exec(_module(("first", "second")), namespace)
    moved = []

    class Layer:
        def to(self, device):
            moved.append(device)
            return self

        def eval(self):
            return self

    namespace.update(first=Layer(), second=Layer())
    namespace["to_device"]("cuda:1")  # type: ignore[operator]
    assert moved == ["cuda:1", "cuda:1"]


def test_a_forward_without_layers_has_no_to_device() -> None:
    source = _module(())
    assert "to_device" not in source
    assert _module(("only",)).count("(only,)") == 1
