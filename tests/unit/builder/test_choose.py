"""How `auto` picks among the compiled backends that verified."""

from __future__ import annotations

import pytest

from padlc.builder.choose import choose


def test_the_fastest_backend_is_chosen_and_the_reason_names_every_time() -> None:
    name, why = choose([("export", 40e-6), ("onnx", 20e-6), ("torchscript", 30e-6)])
    assert name == "onnx"
    assert why == (
        "auto chose onnx: the fastest verified forward here (infer_apply 20 µs per item; "
        "export 40 µs, torchscript 30 µs; a later backend of export, onnx, torchscript must be "
        "10% faster to be preferred)"
    )


def test_a_later_backend_within_the_margin_does_not_displace_an_earlier_one() -> None:
    assert choose([("export", 20e-6), ("onnx", 19e-6)])[0] == "export"


def test_a_single_verified_backend_is_kept_and_said_to_be_the_only_one() -> None:
    assert choose([("torchscript", 1e-3)]) == (
        "torchscript",
        "auto kept torchscript: the only compiled forward that verified",
    )


def test_choosing_among_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        choose([])
