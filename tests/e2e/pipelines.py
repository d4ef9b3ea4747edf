"""The fixture table: pipelines covering the language, each with raw example inputs.

Every entry is built with every backend available here and compared with the eager pipeline
(tests/e2e/test_build_matrix.py); ``benchmarks/backends.py`` times them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from padlc import IfInfer, Transform, Try, batch, same, transform, unbatch
from tests.e2e import fixture_code as code

tr = transform


@dataclass(frozen=True)
class Fixture:
    name: str
    make: Callable[[], Transform]
    inputs: tuple[Any, ...]
    #: backends expected to fail, with the error class and a phrase of its message
    fails: dict[str, tuple[type[Exception], str]] | None = None


def _seeded(make: Callable[[], Transform]) -> Callable[[], Transform]:
    def seeded() -> Transform:
        torch.manual_seed(0)
        return make()

    return seeded


def image() -> Transform:
    return (
        tr(code.to_image)
        >> same.float() >> same.div(255.0) >> same.permute(2, 0, 1)
        >> batch >> tr(code.ConvNet)(3) >> same.softmax(-1) >> unbatch >> tr(code.top_score)
    )  # fmt: skip


def text() -> Transform:
    return (
        tr(code.tokenize)
        >> tr(code.lookup)
        >> batch
        >> tr(code.TextNet)(16, 8, 3)
        >> unbatch
        >> tr(code.label_of)
    )


def two_inputs() -> Transform:
    return (tr(code.to_tensor) / tr(code.to_tensor)) >> batch >> tr(code.TwoInputs)() >> unbatch


def two_outputs() -> Transform:
    model = tr(torch.nn).Linear(4, 3)
    return tr(code.to_tensor) >> batch >> model >> (same.argmax(-1) + same.softmax(-1)) >> unbatch


def mapped() -> Transform:
    return (
        ~tr(code.to_tensor)
        >> batch
        >> (tr(torch.nn).Linear(2, 2) / tr(torch.nn).Linear(2, 2))
        >> unbatch
        >> ~same.sum()
    )


def dict_output() -> Transform:
    return (
        tr(code.tokenize) >> tr(code.lookup) >> batch >> tr(code.TextNet)(16, 8, 3) >> unbatch
        >> (tr(code.label_of) + same.softmax(-1)) >> tr(code.as_dict)
    )  # fmt: skip


def transformer() -> Transform:
    return (
        tr(code.tokenize)
        >> tr(code.lookup)
        >> batch
        >> tr(code.Encoder)(16, 16, 3)
        >> unbatch
        >> tr(code.label_of)
    )


def batchnorm() -> Transform:
    return (
        tr(code.to_tensor)
        >> batch
        >> tr(code.NormNet)()
        >> unbatch
        >> same[1]
        >> tr(code.top_score)
    )


def no_postprocess() -> Transform:
    return tr(code.to_tensor) >> batch >> tr(torch.nn).Linear(4, 2) >> same.tanh()


def no_preprocess() -> Transform:
    return batch >> tr(torch.nn).Linear(4, 2) >> unbatch >> same.argmax()


def if_infer() -> Transform:
    return (
        tr(code.to_tensor) >> IfInfer(tr(code.scale), tr(code.data_dependent))
        >> batch >> tr(torch.nn).Linear(4, 2) >> unbatch >> IfInfer(same.relu())
    )  # fmt: skip


def with_try() -> Transform:
    return (
        Try(tr(code.parse_number), tr(code.fallback), ValueError)
        >> batch
        >> tr(torch.nn).Linear(1, 2)
        >> unbatch
    )


def no_batch() -> Transform:
    return tr(code.to_tensor) >> tr(torch.nn).Linear(4, 2) >> unbatch >> same.sum()


def unexportable() -> Transform:
    return (
        tr(code.to_tensor)
        >> batch
        >> tr(torch.nn).Linear(4, 4)
        >> tr(code.data_dependent)
        >> unbatch
    )


VECTORS = ([0.5, -1.0, 2.0, 0.0], [1.0, 1.0, -3.0, 0.25], [0.0, 0.1, 0.2, 0.3])
TEXTS = ("The cat sat on the mat", "a dog ran fast", "slow cat")

FIXTURES: tuple[Fixture, ...] = (
    Fixture("image", _seeded(image), (1, 2, 3)),
    Fixture("text", _seeded(text), TEXTS),
    Fixture(
        "two_inputs",
        _seeded(two_inputs),
        (([1.0, 2, 3, 4], [0.5, 0.5]), ([0.0, 1, 0, 1], [1.0, -1.0])),
    ),
    Fixture("two_outputs", _seeded(two_outputs), VECTORS),
    Fixture("mapped", _seeded(mapped), (([1.0, 2.0], [3.0, 4.0]), ([0.0, 1.0], [-1.0, 0.5]))),
    Fixture("dict_output", _seeded(dict_output), TEXTS),
    Fixture("transformer", _seeded(transformer), TEXTS),
    Fixture(
        "batchnorm",
        _seeded(batchnorm),
        ([1.0, 2, 3, 4, 5, 6], [0.0, -1, 0.5, 2, 1, 1], [3.0, 3, 3, 3, 3, 3]),
    ),
    Fixture("no_postprocess", _seeded(no_postprocess), VECTORS),
    Fixture("no_preprocess", _seeded(no_preprocess), tuple(torch.tensor(v) for v in VECTORS)),
    Fixture("if_infer", _seeded(if_infer), VECTORS),
    Fixture("try", _seeded(with_try), ("1.5", "oops", "-2")),
)

#: Pipelines whose build must fail or fall back, with the documented error.
UNEXPORTABLE = Fixture("unexportable", _seeded(unexportable), VECTORS)
NO_BATCH = Fixture("no_batch", _seeded(no_batch), VECTORS)
