"""``transform(torch.jit.script(module))``: scripted modules apply, move and list their layers."""

from __future__ import annotations

import pytest
import torch

from padlc import Transform, batch, transform
from padlc.language.atomic import TorchModuleTransform

from .pipelines import PolynomialModule, WeightedSum

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")


@pytest.fixture
def scripted() -> Transform:
    return transform(torch.jit.script(PolynomialModule(2, 3)))


def test_a_scripted_module_becomes_a_transform(scripted):
    assert isinstance(scripted, Transform)
    assert isinstance(scripted, torch.jit.ScriptModule)


def test_a_scripted_module_transform_applies_the_module(scripted):
    assert scripted(torch.tensor(1.0)).item() == 2.0
    assert scripted.infer_apply(torch.tensor(2.0)).item() == 12.0
    assert (transform(lambda x: x + 1) >> batch >> scripted).infer_apply(torch.tensor(0.0)) == 2.0


def test_a_scripted_module_transform_applies_in_eval_apply(scripted):
    p = transform(lambda x: x + 1) >> batch >> scripted
    assert [o.tolist() for o in p.eval_apply(torch.tensor([0.0, 1.0]))] == [[2.0, 12.0]]


def test_a_scripted_module_transform_is_a_layer_with_its_parameters(scripted):
    assert len(scripted.pd_layers) == 1
    assert len(list(scripted.pd_parameters())) == 2
    scripted.pd_to("cpu")
    assert next(scripted.pd_layers[0].parameters()).device.type == "cpu"


def test_a_scripted_module_transform_shares_the_scripted_modules_parameters():
    module = torch.jit.script(PolynomialModule(2, 3))
    t = transform(module)
    with torch.no_grad():
        module.a.fill_(1.0)
    assert t(torch.tensor(2.0)).item() == 2.0 + 8.0


def test_a_scripted_module_transform_has_every_method_of_a_layer_transform(scripted):
    assert set(dir(TorchModuleTransform)) <= set(dir(scripted))


def test_a_scripted_forward_with_several_parameters_unpacks_a_tuple():
    add = transform(torch.jit.script(WeightedSum()))
    pair = transform(lambda x: (x, x * 10))
    assert (pair >> add)(torch.tensor(1.0)).item() == 11.0


def test_a_scripted_module_prints_as_its_original_class_in_a_pipeline():
    p = transform(lambda x: x) >> transform(torch.jit.script(PolynomialModule(2, 3)))
    assert repr(p).endswith("<scripted PolynomialModule>")
