"""repr, print (ASCII picture) and the Jupyter HTML form."""

from padlc import batch, unbatch

from .pipelines import plus, plus_one, times_two


def test_print_draws_steps_branches_and_arguments():
    text = str(plus_one + times_two >> plus)
    assert text.splitlines()[0] == "plus_one + times_two >> plus"
    assert "├─ plus_one" in text
    assert "└─ times_two" in text
    assert "▼ (x, y)" in text


def test_print_marks_the_stage_boundaries():
    text = str(plus_one >> batch >> times_two >> unbatch >> plus_one)
    assert "preprocess ▲ │ ▼ forward" in text
    assert "forward ▲ │ ▼ postprocess" in text


def test_html_form_escapes_and_shows_the_picture():
    html = (plus_one >> batch >> times_two)._repr_html_()
    assert html.startswith('<div class="padlc-pipeline">')
    assert "plus_one &gt;&gt; batch &gt;&gt; times_two" in html


def test_ipython_pretty_printer_uses_the_picture():
    class Printer:
        def __init__(self):
            self.out = ""

        def text(self, s):
            self.out += s

    printer = Printer()
    (plus_one >> times_two)._repr_pretty_(printer, cycle=False)
    assert printer.out == str(plus_one >> times_two)
