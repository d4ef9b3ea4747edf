"""Creating transforms: functions, lambdas, classes, instances, modules, `same`, `identity`."""

import math
import operator

import numpy
import pytest
import torch

from padlc import Transform, identity, same, transform
from padlc.language.atomic import ClassTransform, FunctionTransform

from .pipelines import Polynomial, plus_one


def test_decorated_function_is_a_transform_that_calls_the_function():
    assert isinstance(plus_one, FunctionTransform)
    assert plus_one(1) == 2
    assert plus_one.function.__name__ == "plus_one"


def test_transform_wraps_function_from_another_module():
    log10 = transform(math.log10)
    assert log10(100) == 2.0
    assert log10.pd_name == "log10"


def test_transform_wraps_lambda():
    t = transform(lambda x: x * 10)
    assert isinstance(t, Transform)
    assert t(2) == 20


def test_decorated_callable_class_gives_transform_instances():
    @transform
    class Scale:
        def __init__(self, factor):
            self.factor = factor

        def __call__(self, x):
            return x * self.factor

    scale = Scale(3)
    assert isinstance(scale, Transform)
    assert isinstance(scale, Scale)
    assert scale(2) == 6
    assert scale._pd_init == ((3,), {})


def test_decorated_module_subclass_instances_are_real_modules():
    poly = Polynomial(2, 3)
    assert isinstance(poly, torch.nn.Module)
    assert isinstance(poly, Transform)
    assert len(list(poly.parameters())) == 2
    assert set(poly.state_dict()) == {"a", "b"}
    poly.train(False)
    assert not poly.training
    assert poly(torch.tensor(2.0)).item() == 12.0


def test_wrapped_class_from_elsewhere_records_its_arguments():
    linear = transform(torch.nn.Linear)(3, 4)
    assert isinstance(linear, torch.nn.Linear)
    assert isinstance(linear, ClassTransform)
    assert linear._pd_init == ((3, 4), {})
    assert linear(torch.zeros(2, 3)).shape == (2, 4)


def test_init_arguments_are_those_of_the_outermost_constructor_call():
    @transform
    class Base:
        def __init__(self, a, b, *args, c=1, **kw):
            self.a = a

        def __call__(self, x):
            return x

    class Child(Base):
        def __init__(self, value):
            super().__init__(value, 0)

    assert Child(5)._pd_init == ((5,), {})
    assert Base(1, 2, 3, 4, c=5, d=6)._pd_init == ((1, 2, 3, 4), {"c": 5, "d": 6})


def test_wrapping_a_built_module_shares_its_weights():
    layer = torch.nn.Linear(2, 2)
    wrapped = transform(layer)
    assert isinstance(wrapped, Transform)
    assert wrapped.weight is layer.weight
    assert layer in wrapped.pd_layers or wrapped in wrapped.pd_layers


def test_wrapping_a_callable_instance():
    class Adder:
        def __call__(self, x):
            return x + 5

    adder = transform(Adder())
    assert isinstance(adder, Transform)
    assert adder(1) == 6


def test_module_proxy_gives_transforms_for_functions_and_classes():
    nn = transform(torch.nn)
    layer = nn.Linear(3, 4)
    assert isinstance(layer, torch.nn.Linear)
    assert isinstance(layer, Transform)
    np = transform(numpy)
    assert isinstance(np.cos, Transform)
    assert np.cos(0.0) == 1.0


def test_numpy_ufunc_with_two_inputs_unpacks_a_tuple():
    np = transform(numpy)
    assert np.add._pd_call((1, 2)) == 3


@pytest.mark.parametrize(
    ("sugar", "value", "expected"),
    [
        (same.lower(), "ABC", "abc"),
        (same[0], [1, 2, 3], 1),
        (same[:2], [1, 2, 3], [1, 2]),
        (same.tolist(), torch.tensor([1, 2, 3]), [1, 2, 3]),
    ],
)
def test_same_applies_attribute_item_and_method_access(sugar, value, expected):
    assert sugar(value) == expected


def test_same_supports_tensor_indexing_and_methods_with_arguments():
    x = torch.arange(6).reshape(2, 3)
    assert torch.equal(same[:, 0](x), torch.tensor([0, 3]))
    assert torch.equal(same.argmax(-1)(x), torch.tensor([2, 2]))


def test_same_attribute_without_call_reads_the_attribute_in_a_pipeline():
    t = transform(lambda x: x) >> same.shape
    assert t(torch.zeros(2, 3)) == (2, 3)


def test_identity_returns_its_input():
    assert identity(5) == 5


@pytest.mark.parametrize("bad", [2, "text", None, [1, 2]])
def test_transform_of_a_non_callable_raises_type_error_at_once(bad):
    with pytest.raises(TypeError, match="not callable"):
        transform(bad)


def test_plain_function_in_an_operator_is_wrapped_automatically():
    def double(x):
        return 2 * x

    pipeline = plus_one >> double
    assert isinstance(pipeline[1], Transform)
    assert pipeline(1) == 4


def test_non_callable_in_an_operator_is_rejected_at_once_naming_it():
    with pytest.raises(TypeError, match=r"Cannot use 3 \(a int\) with `>>`"):
        plus_one >> 3


@pytest.mark.parametrize(
    ("callable_", "item", "expected"),
    [
        pytest.param(str.upper, "ab", "AB", id="method descriptor"),
        pytest.param(operator.itemgetter(1), [5, 6], 6, id="itemgetter"),
        pytest.param(operator.methodcaller("split", ","), "a,b", ["a", "b"], id="methodcaller"),
        pytest.param((2).__add__, 3, 5, id="method wrapper"),
    ],
)
def test_c_callables_become_function_transforms(callable_, item, expected):
    assert transform(callable_).infer_apply(item) == expected
