"""Misspelt keyword arguments name the closest option (``padl_runtime.keywords``)."""

from __future__ import annotations

import pytest

from padl_runtime.keywords import suggest_keywords


@suggest_keywords(hint={"shuffle": "Outputs come in input order."})
def apply(items: list[int], *, batch_size: int = 64, num_workers: int = 0) -> int:
    return batch_size + num_workers


def test_known_keywords_pass_through() -> None:
    assert apply([], batch_size=3, num_workers=1) == 4


def test_an_unknown_keyword_names_the_closest_and_every_option() -> None:
    with pytest.raises(TypeError) as info:
        apply([], num_worker=2)  # type: ignore[call-arg]
    message = str(info.value)
    assert "'num_worker' (did you mean 'num_workers'?)" in message
    assert message.endswith("its options are batch_size, num_workers.")


def test_the_hint_of_a_keyword_follows_the_options() -> None:
    with pytest.raises(TypeError, match=r"options are batch_size, num_workers\. Outputs come in"):
        apply([], shuffle=True)  # type: ignore[call-arg]


def test_a_function_taking_any_keyword_is_refused() -> None:
    def anything(**options: object) -> None:
        return None

    with pytest.raises(TypeError, match="takes \\*\\*kwargs"):
        suggest_keywords(anything)
