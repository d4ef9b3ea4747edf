"""Model instances and third-party objects: the routes that save them, and the errors when none does.

The round trips here load in the same process (the e2e tests load in a fresh one).
"""

from __future__ import annotations

import json
import typing
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

import padlc
from padlc import SaveError, batch, transform, unbatch
from padlc.capture import capture_pipeline

torch.manual_seed(0)


@transform
def prepare(x):
    return torch.tensor(x, dtype=torch.float32)


class Net(nn.Module):
    """Does not store ``h``: no rebuild from attributes can know it."""

    def __init__(self, h):
        super().__init__()
        self.layer = nn.Linear(4, h)

    def forward(self, x):
        return self.layer(x)


def make_model():
    return Net(3)


def build_pipeline():
    hidden = 6
    local_model = Net(hidden)
    return prepare >> batch >> transform(local_model) >> unbatch


def wrap(obj):
    return transform(obj)


class Scale:
    def __init__(self, factor):
        self.k = factor

    def __call__(self, x):
        return x * self.k


sequential = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
net = Net(5)
made = make_model()
scale = Scale(3)
X = [1.0, -2.0, 0.5, 3.0]


def _save_and_load(p: padlc.Transform, tmp_path: Path) -> tuple[str, padlc.Transform]:
    padlc.save(p, tmp_path / "p")
    loaded = padlc.load(tmp_path / "p.padl")
    return (tmp_path / "p.padl" / "pipeline.py").read_text(), loaded


def _same_outputs(p: padlc.Transform, loaded: padlc.Transform) -> bool:
    return bool(torch.equal(p.infer_apply(X), loaded.infer_apply(X)))


def test_a_sequential_instance_is_saved_as_the_statement_that_made_it(tmp_path: Path) -> None:
    p = prepare >> batch >> transform(sequential) >> unbatch
    source, loaded = _save_and_load(p, tmp_path)
    assert "sequential = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))" in source
    assert "transform(sequential)" in source
    assert _same_outputs(p, loaded)


def test_a_plain_module_used_as_an_operand_is_saved_like_transform_of_it(tmp_path: Path) -> None:
    p = prepare >> batch >> sequential >> unbatch
    source, loaded = _save_and_load(p, tmp_path)
    assert "transform(sequential)" in source and _same_outputs(p, loaded)


def test_an_instance_whose_init_does_not_store_its_argument_saves(tmp_path: Path) -> None:
    p = prepare >> batch >> transform(net) >> unbatch
    source, loaded = _save_and_load(p, tmp_path)
    assert "class Net(nn.Module):" in source and "net = Net(5)" in source
    assert _same_outputs(p, loaded)


def test_an_instance_made_by_a_factory_function_saves_the_call(tmp_path: Path) -> None:
    p = prepare >> batch >> transform(made) >> unbatch
    source, loaded = _save_and_load(p, tmp_path)
    assert "def make_model():" in source and "made = make_model()" in source
    assert _same_outputs(p, loaded)


def test_an_instance_made_inline_saves_its_expression(tmp_path: Path) -> None:
    p = prepare >> batch >> transform(nn.Sequential(nn.Linear(4, 2), nn.Tanh())) >> unbatch
    source, loaded = _save_and_load(p, tmp_path)
    assert "sequential = nn.Sequential(nn.Linear(4, 2), nn.Tanh())" in source
    assert _same_outputs(p, loaded)


def test_an_instance_assigned_in_the_function_that_returns_the_pipeline(tmp_path: Path) -> None:
    p = build_pipeline()
    source, loaded = _save_and_load(p, tmp_path)
    assert "hidden = 6" in source and "local_model = Net(hidden)" in source
    assert _same_outputs(p, loaded)


def test_a_plain_callable_instance_saves_its_creation(tmp_path: Path) -> None:
    source, loaded = _save_and_load(transform(scale), tmp_path)
    assert "scale = Scale(3)" in source and loaded(2) == 6


def test_state_set_after_creation_is_saved_after_the_statement(tmp_path: Path) -> None:
    model = Net(2)
    model.layer.scale = 0.5  # a plain attribute set afterwards
    source, loaded = _save_and_load(transform(model), tmp_path)
    assert "model = Net(2)\nmodel.layer.scale = 0.5" in source
    assert loaded.layer.scale == 0.5


def test_a_container_changed_after_creation_is_rebuilt_from_its_layers(tmp_path: Path) -> None:
    changed = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    changed[0] = nn.Linear(4, 2)  # the statement would build a Linear(4, 3)
    p = prepare >> batch >> transform(changed) >> unbatch
    source, loaded = _save_and_load(p, tmp_path)
    assert "nn.Linear(in_features=4, out_features=2, bias=True)" in source
    assert _same_outputs(p, loaded)


def test_containers_without_a_statement_are_rebuilt_from_their_layers(tmp_path: Path) -> None:
    model = nn.ModuleDict({"encode": nn.ModuleList([nn.Linear(4, 4)]), "head": nn.Tanh()})
    named = nn.Sequential(OrderedDict([("first", nn.Linear(4, 2)), ("act", nn.ReLU())]))
    for obj, expected in [
        (model, "nn.ModuleDict({'encode': nn.ModuleList([nn.Linear("),
        (named, "nn.Sequential(OrderedDict([('first', nn.Linear("),
    ]:
        t = wrap(obj)  # made from a function argument: no statement shows how
        root = tmp_path / type(obj).__name__
        root.mkdir()
        source = capture_pipeline(t, root).source
        assert expected in source.replace("torch.nn.", "nn."), source


def test_an_instance_no_route_saves_names_it_where_it_was_made_and_the_fix(tmp_path: Path) -> None:
    t = wrap(Net(2))
    with pytest.raises(SaveError) as info:
        capture_pipeline(batch >> t >> unbatch, tmp_path)
    message = str(info.value)
    assert "a Net" in message and "test_instances.py" in message  # the object and its site
    assert "no statement that created it" in message
    assert "'h' is not stored as an attribute" in message
    assert "transform(Net)(...)" in message  # the fix


def test_hooks_registered_after_creation_are_refused(tmp_path: Path) -> None:
    model = Net(2)
    model.layer.register_forward_hook(lambda *args: None)
    with pytest.raises(SaveError, match="hooks registered after construction"):
        capture_pipeline(transform(model), tmp_path)


def test_batchnorm_momentum_changed_inside_a_numbered_submodule(tmp_path: Path) -> None:
    @transform
    class Backbone(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)))

        def forward(self, x):
            return self.features(x)

    backbone = Backbone()
    backbone.features[0][1].momentum = 0.01
    source, loaded = _save_and_load(backbone, tmp_path)
    assert "backbone.features[0][1].momentum = 0.01" in source
    assert loaded.features[0][1].momentum == 0.01


def test_wrapped_classes_have_type_hints_that_resolve() -> None:
    # libraries call typing.get_type_hints on classes padlc wraps (transformers does)
    hints = typing.get_type_hints(transform(nn.Linear))
    assert "in_features" in hints and "_pd_init" in hints


def test_an_operand_records_the_users_line_as_where_it_was_made() -> None:
    p = prepare >> sequential
    location = p._pd_transforms[1]._pd_location
    assert location[0] == __file__ and location[1] > 0


class Vocabulary:
    """Has no source padlc can rebuild from (its words come from outside): a serializer saves it."""

    def __init__(self, words):
        self.index = {w: i for i, w in enumerate(words)}

    def save(self, directory: Path) -> None:
        (directory / "words.json").write_text(json.dumps(list(self.index)))

    @classmethod
    def from_directory(cls, directory: Path) -> Vocabulary:
        return cls(json.loads((directory / "words.json").read_text()))


def test_a_registered_serializer_saves_an_object_as_its_files(tmp_path: Path) -> None:
    padlc.serializer(Vocabulary, save=Vocabulary.save, load="from_directory")
    words = Vocabulary(json.loads('["a", "b", "c"]'))

    @transform
    def lookup(word):
        return words.index[word]

    source, loaded = _save_and_load(lookup, tmp_path)
    assert "Vocabulary.from_directory(verified(__file__, 'data/words'))" in source
    assert (tmp_path / "p.padl" / "data" / "words" / "words.json").is_file()
    assert loaded("c") == 2


def test_a_serializer_loads_the_verified_bytes_not_the_files_on_disk(tmp_path: Path) -> None:
    padlc.serializer(Vocabulary, save=Vocabulary.save, load="from_directory")
    # words no other test saves: a copy verified for an equal manifest would be used as it is
    words = Vocabulary(json.loads('["x", "y", "w"]'))

    @transform
    def lookup(word):
        return words.index[word]

    padlc.save(lookup, tmp_path / "p")
    saved = tmp_path / "p.padl" / "data" / "words" / "words.json"
    saved.write_text(saved.read_text().replace('"x"', '"z"'))  # same size, other bytes
    with pytest.raises(padlc.ArtifactError, match="does not match its SHA-256"):
        padlc.load(tmp_path / "p.padl")


def test_a_serializer_needs_a_class_and_a_load_it_can_call() -> None:
    with pytest.raises(TypeError, match="names no method"):
        padlc.serializer(Vocabulary, save=Vocabulary.save, load="missing")
    with pytest.raises(TypeError, match="needs a class"):
        padlc.serializer(Vocabulary(["a"]), save=Vocabulary.save, load="from_directory")  # type: ignore[arg-type]


class Holder:
    """An attribute without ``__eq__`` set in ``__init__``."""

    def __init__(self, words):
        self.vocabulary = Vocabulary(words)

    def __call__(self, word):
        return self.vocabulary.index[word]


def test_attributes_set_in_init_are_compared_by_saved_state_not_identity(tmp_path: Path) -> None:
    padlc.serializer(Vocabulary, save=Vocabulary.save, load="from_directory")
    holder = transform(Holder)(["x", "y"])
    source = capture_pipeline(holder, tmp_path).source
    assert "holder.vocabulary" not in source  # not "changed after construction"
    holder.vocabulary.index["z"] = 2  # changed: saved as its files
    (tmp_path / "changed").mkdir()
    source = capture_pipeline(holder, tmp_path / "changed").source
    assert "holder.vocabulary = Vocabulary.from_directory(" in source
