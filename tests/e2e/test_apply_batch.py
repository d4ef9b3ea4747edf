"""CompiledPipeline.apply_batch: one batch of raw items, each item's output or its own failure."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import padl_runtime
import padlc
from padl_runtime import ItemError
from tests.e2e.serve_code import ITEMS, make_pipeline


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> padl_runtime.CompiledPipeline:
    target = tmp_path_factory.mktemp("batch") / "model.padl"
    path = padlc.build(make_pipeline(), target, inputs=ITEMS[:4], backend="export").path
    return padl_runtime.load(path)


def _close(a: dict, b: dict) -> bool:
    return a["label"] == b["label"] and torch.allclose(a["scores"], b["scores"], atol=1e-6)


def test_apply_batch_gives_what_infer_apply_gives_for_each_item(pipeline) -> None:
    outputs = pipeline.apply_batch(ITEMS)
    assert len(outputs) == len(ITEMS)
    assert all(_close(o, pipeline.infer_apply(i)) for o, i in zip(outputs, ITEMS, strict=True))


def test_a_failing_preprocess_fails_only_its_item_naming_the_step(pipeline) -> None:
    items = [ITEMS[0], [999.0, 0, 0, 0], ITEMS[2]]
    first, failed, last = pipeline.apply_batch(items, return_exceptions=True)
    assert isinstance(failed, ItemError)
    assert (failed.index, failed.stage, failed.step) == (1, "preprocess", "parse")
    assert failed.error_type == "ValueError" and "asks to fail" in failed.message
    assert failed.location.startswith("stages.py:")
    assert _close(first, pipeline.infer_apply(ITEMS[0]))
    assert _close(last, pipeline.infer_apply(ITEMS[2]))


def test_an_item_of_another_shape_fails_alone(pipeline) -> None:
    outputs = pipeline.apply_batch([ITEMS[0], [1.0, 2.0], ITEMS[1]], return_exceptions=True)
    assert isinstance(outputs[1], ItemError)
    assert "shape [2]" in outputs[1].message and "shape [4]" in outputs[1].message
    assert not isinstance(outputs[0], ItemError) and not isinstance(outputs[2], ItemError)


def test_without_return_exceptions_the_failure_raises_with_a_note(pipeline) -> None:
    with pytest.raises(ValueError, match="asks to fail") as info:
        pipeline.apply_batch([ITEMS[0], [999.0, 0, 0, 0]])
    assert "while preprocessing item 1 of the batch" in info.value.__notes__


def test_item_errors_pickle_without_the_original_exception(pipeline) -> None:
    import pickle

    (error,) = pipeline.apply_batch([[999.0, 0, 0, 0]], return_exceptions=True)
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.step == "parse"


def test_eval_apply_and_apply_batch_agree(pipeline) -> None:
    batched = pipeline.apply_batch(ITEMS)
    streamed = list(pipeline.eval_apply(ITEMS, batch_size=8))
    assert all(_close(a, b) for a, b in zip(batched, streamed, strict=True))


class _Picky(torch.nn.Module):
    """A forward that raises for a batch holding a row that starts with 7."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x[:, 0] == 7).any()):
            raise ValueError("the forward refuses a row starting with 7")
        return self.layer(x)


def test_a_forward_failure_is_narrowed_to_the_items_that_cause_it(tmp_path: Path) -> None:
    from padlc import batch, transform, unbatch

    pipe = transform(lambda v: torch.tensor(v)) >> batch >> transform(_Picky()) >> unbatch
    path = padlc.build(pipe, tmp_path / "picky.padl", inputs=ITEMS[:3], backend="eager").path
    loaded = padl_runtime.load(path)
    outputs = loaded.apply_batch([ITEMS[0], [7.0, 0, 0, 0], ITEMS[1]], return_exceptions=True)
    assert isinstance(outputs[1], ItemError) and outputs[1].stage == "forward"
    assert "refuses" in outputs[1].message
    assert torch.allclose(outputs[0], loaded.infer_apply(ITEMS[0]))
    assert torch.allclose(outputs[2], loaded.infer_apply(ITEMS[1]))
