"""The server's dynamic batcher, in process: batches of concurrent requests, bounded waiting."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import padl_runtime
import padlc
from padl_runtime.serve.batcher import Batcher, Overloaded
from tests.e2e.serve_code import ITEMS, make_pipeline


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> padl_runtime.CompiledPipeline:
    target = tmp_path_factory.mktemp("batcher") / "model.padl"
    path: Path = padlc.build(make_pipeline(), target, inputs=ITEMS[:4], backend="export").path
    return padl_runtime.load(path)


def _run(batcher: Batcher, body) -> object:
    async def main() -> object:
        batcher.start()
        try:
            return await body()
        finally:
            batcher.close()

    return asyncio.run(main())


def _batches(batcher: Batcher) -> tuple[float, float]:
    """(batches, items) the forward ran."""
    registry = batcher.metrics.registry
    return (
        registry.get_sample_value("padl_batch_size_count"),
        registry.get_sample_value("padl_batch_size_sum"),
    )


def test_requests_submitted_together_share_one_forward(pipeline) -> None:
    batcher = Batcher(pipeline, max_batch=64, max_wait=1.0)

    async def body() -> list:
        batcher.arriving(1)  # as the app does while it reads a request
        futures = [batcher.submit([item]) for item in ITEMS[:10]]
        batcher.arriving(-1)
        return await asyncio.gather(*futures)

    results = _run(batcher, body)
    assert [r[0]["label"] for r in results] == [
        pipeline.infer_apply(i)["label"] for i in ITEMS[:10]
    ]
    assert _batches(batcher) == (1, 10)


def test_batches_hold_at_most_max_batch_items(pipeline) -> None:
    batcher = Batcher(pipeline, max_batch=4, max_wait=1.0)

    async def body() -> list:
        return await batcher.submit(ITEMS[:10])

    assert len(_run(batcher, body)) == 10
    batches, items = _batches(batcher)
    assert items == 10 and batches >= 3


def test_a_lone_request_is_not_held_back(pipeline) -> None:
    batcher = Batcher(pipeline, max_wait=5.0)

    async def body() -> float:
        started = time.perf_counter()
        await batcher.submit([ITEMS[0]])
        return time.perf_counter() - started

    assert _run(batcher, body) < 2.0  # nothing else is arriving: no wait for the 5 s


def test_a_batch_waits_for_arriving_requests_at_most_max_wait(pipeline) -> None:
    batcher = Batcher(pipeline, max_wait=0.3)

    async def body() -> float:
        batcher.arriving(1)  # a request that never finishes arriving
        started = time.perf_counter()
        await batcher.submit([ITEMS[0]])
        return time.perf_counter() - started

    assert 0.25 <= _run(batcher, body) < 2.0


def test_a_full_queue_refuses_with_a_retry_after(pipeline) -> None:
    batcher = Batcher(pipeline, max_queue=3)

    async def body() -> Overloaded:
        batcher.arriving(1)  # keeps the first items waiting
        batcher.submit(ITEMS[:3])
        with pytest.raises(Overloaded) as info:
            batcher.submit(ITEMS[:1])
        batcher.arriving(-1)
        return info.value

    refused = _run(batcher, body)
    assert refused.retry_after >= 1 and "--max-queue" in str(refused)


def test_a_request_past_its_timeout_raises_and_its_items_are_dropped(pipeline) -> None:
    batcher = Batcher(pipeline, max_batch=1, timeout=0.2)
    slow = [-0.6, 0.0, 0.0, 0.0]  # the preprocess sleeps 0.6 s

    async def body() -> None:
        first = batcher.submit([slow])
        second = batcher.submit([ITEMS[0]])  # waits behind the slow one, past its timeout
        for future in (first, second):
            with pytest.raises(TimeoutError):
                await future

    _run(batcher, body)
    assert _batches(batcher)[1] == 1  # the expired second item never reached the forward


def test_close_finishes_accepted_items(pipeline) -> None:
    batcher = Batcher(pipeline, max_batch=2)

    async def body() -> list:
        futures = [batcher.submit([item]) for item in ITEMS[:6]]
        await asyncio.to_thread(batcher.close)
        return await asyncio.gather(*futures)

    assert [r[0]["label"] for r in _run(batcher, body)] == [
        pipeline.infer_apply(i)["label"] for i in ITEMS[:6]
    ]
