"""The Ray Serve deployment a user writes by hand around a built artifact: ``@serve.batch`` over
``eval_apply``, ``max_ongoing_requests=256``, the request's JSON read by Starlette and the answer
a dict (Ray writes it as JSON)."""

from __future__ import annotations

from typing import Any

from ray import serve
from starlette.requests import Request

import padl_runtime


@serve.deployment(max_ongoing_requests=256)
class Handwritten:
    def __init__(self, path: str) -> None:
        self.pipeline = padl_runtime.load(path)

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.005)
    async def predict(self, items: list[Any]) -> list[Any]:
        return list(self.pipeline.eval_apply(items, batch_size=64))

    async def __call__(self, request: Request) -> dict[str, Any]:
        body = await request.json()
        return {"output": await self.predict(body["input"])}
