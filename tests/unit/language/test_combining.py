"""Operators, flattening, grouping, names, output namedtuples, unpacking, indexing."""

import pytest
import torch

from padlc import Compose, Map, Parallel, Rollout, group, identity, transform

from .pipelines import add_all, doubled_plus_one, plus, plus_one, times_two


def test_compose_is_associative():
    left = (plus_one >> times_two) >> times_two
    right = plus_one >> (times_two >> times_two)
    assert left(123) == right(123) == 496


def test_compose_flattens_into_one_pipeline():
    p = plus_one >> plus_one >> plus_one
    assert isinstance(p, Compose)
    assert len(p) == 3
    assert p(1) == 4


def test_group_prevents_flattening():
    p = plus_one >> group(plus_one >> plus_one)
    assert len(p) == 2
    assert isinstance(p[1], Compose)


def test_rollout_gives_each_branch_the_same_input():
    assert tuple((plus_one + times_two)(3)) == (4, 6)


def test_rollout_output_fields_are_named_after_branches_with_duplicates_numbered():
    out = (plus_one + times_two + times_two)(123)
    assert out._fields == ("plus_one", "times_two_0", "times_two_1")


def test_unnamed_branches_get_positional_field_names():
    out = (transform(lambda x: x) + transform(lambda x: x) + transform(lambda x: x))(1)
    assert out._fields == ("out_0", "out_1", "out_2")


def test_parallel_applies_each_branch_to_its_input():
    out = (plus_one / times_two / times_two)((2, 3, 4))
    assert tuple(out) == (3, 6, 8)
    assert out._fields == ("plus_one", "times_two_0", "times_two_1")


def test_parallel_rejects_input_of_wrong_length():
    with pytest.raises(TypeError, match="tuple or list of 2 values"):
        (plus_one / times_two)((1, 2, 3))


def test_map_applies_to_each_element_and_returns_a_tuple():
    assert (~plus_one)([2, 3, 4]) == (3, 4, 5)
    assert isinstance(~plus_one, Map)


def test_map_nested_in_parallel():
    assert tuple((transform(lambda x: x) / ~plus_one)((1, [2, 3, 4]))) == (1, (3, 4, 5))


def test_named_copy_leaves_the_original_unnamed():
    named = plus_one - "p1"
    assert named.pd_name == "p1"
    assert plus_one._pd_name is None
    assert plus_one.pd_name == "plus_one"


def test_named_pipeline_is_grouped():
    inner = (plus_one >> plus_one) - "inner"
    p = inner >> times_two
    assert len(p) == 2


def test_explicit_name_becomes_the_output_field():
    out = ((plus_one - "a") + (times_two - "b"))(1)
    assert out._fields == ("a", "b")


def test_a_composed_branch_bound_to_a_variable_gives_the_field_its_name():
    # PADL named every transform, pipelines included, after the variable it is bound to.
    out = (doubled_plus_one + plus_one)(1)
    assert out._fields == ("doubled_plus_one", "plus_one")


def test_identity_branch_gives_the_field_identity():
    # PADL named `identity` by the variable it is bound to.
    assert (identity + times_two)(3)._fields == ("identity", "times_two")


def test_an_unassigned_inline_transform_of_a_function_is_named_after_the_function():
    # PADL gave such a branch `out_i` (it named transforms by their variables only); padlc names a
    # function transform after the function, as PADL named a decorated function (see the
    # migration guide).
    def halve(x):
        return x / 2

    assert (transform(halve) + plus_one)(4)._fields == ("halve", "plus_one")


def test_name_must_be_an_identifier():
    with pytest.raises(ValueError, match="identifiers"):
        plus_one - "not valid"


def test_tuple_output_is_unpacked_into_a_two_parameter_function():
    assert (plus_one + times_two >> plus)(3) == 10


def test_tuple_output_is_unpacked_into_varargs():
    assert (plus_one + times_two + times_two >> add_all)(1) == 2 + 2 + 2


@transform
def plus_default(a, b=10):
    return a + b


def test_parameters_with_defaults_count_for_unpacking():
    # PADL unpacks by the number of positional parameters, defaults included.
    assert (plus_one + times_two >> plus_default).infer_apply(201) == 202 + 402


def test_one_value_into_a_function_with_a_default_is_not_unpacked():
    assert (plus_one >> plus_default).infer_apply(11) == 12 + 10


def test_keyword_only_parameters_do_not_count_for_unpacking():
    @transform
    def count(values, *, scale=1):
        return len(values) * scale

    assert (plus_one + times_two >> count)(1) == 2


def test_class_and_module_parameters_with_defaults_count_for_unpacking():
    @transform
    class Add:
        def __call__(self, x, y=100):
            return x + y

    @transform
    class Masked(torch.nn.Module):
        def forward(self, x, mask=None):
            return x if mask is None else x * mask

    assert (plus_one + times_two >> Add())(1) == 2 + 2
    pair = transform(lambda x: (torch.tensor([x, x]), torch.tensor([1.0, 0.0])))
    assert (pair >> Masked())(3.0).tolist() == [3.0, 0.0]


def test_integer_index_returns_the_child():
    p = plus_one >> times_two >> plus_one
    assert p[1] is times_two


def test_index_out_of_range_says_how_many_steps_there_are():
    with pytest.raises(IndexError, match="has 2 steps"):
        (plus_one >> times_two)[2]


def test_negative_index_counts_from_the_end():
    assert (plus_one >> times_two)[-2] is plus_one


def test_slice_returns_the_same_pipeline_kind():
    p = plus_one + times_two + plus_one
    assert isinstance(p[1:], Rollout)
    assert len(p[1:]) == 2
    assert isinstance((plus_one / times_two / plus_one)[:2], Parallel)


def test_string_index_searches_nested_children():
    named = times_two - "named_times_two"
    p = plus_one >> (plus_one + named)
    assert p["named_times_two"] is named


def test_unknown_name_raises_value_error():
    with pytest.raises(ValueError, match="No transform named 'other'"):
        (plus_one >> times_two)["other"]


def test_bad_index_type_raises_type_error():
    with pytest.raises(TypeError):
        (plus_one >> times_two)[2.1]


def test_len_counts_direct_children():
    assert len(plus_one >> (times_two + plus_one) >> times_two) == 3


def test_repr_is_the_short_operator_form():
    assert repr(plus_one + times_two >> plus) == "plus_one + times_two >> plus"
    assert (
        repr(plus_one >> group(times_two >> plus_one)) == "plus_one >> group(times_two >> plus_one)"
    )
    assert repr((plus_one >> times_two) / plus_one) == "(plus_one >> times_two) / plus_one"
    assert repr(~(plus_one >> times_two)) == "~(plus_one >> times_two)"


def test_module_layers_inside_pipelines_are_found():
    layer = transform(torch.nn.Linear)(2, 2)

    @transform
    def uses_global(x):
        return GLOBAL_LAYER(x)

    p = layer >> uses_global
    assert p.pd_layers == [layer, GLOBAL_LAYER]
    assert len(list(p.pd_parameters())) == 4


GLOBAL_LAYER = torch.nn.Linear(2, 2)
