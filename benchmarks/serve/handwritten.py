"""The servers ``padlc serve`` is compared with, as a user would write them (FastAPI on uvicorn).

``app``: ``POST /predict`` calling ``infer_apply`` on the request's item, one request at a time.
``empty``: the same endpoint without the model: it reads the JSON and answers a constant, the
HTTP stack's own ceiling. The artifact is named by the ``PADL_ARTIFACT`` environment variable.

    PADL_ARTIFACT=model.padl uvicorn benchmarks.serve.handwritten:app --port 8001
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, Request

import padl_runtime

app = FastAPI()
empty = FastAPI()
_pipeline = (
    padl_runtime.load(os.environ["PADL_ARTIFACT"]) if "PADL_ARTIFACT" in os.environ else None
)


@app.post("/predict")
async def predict(request: Request) -> dict[str, Any]:
    body = await request.json()
    assert _pipeline is not None, "set PADL_ARTIFACT to the artifact's path"
    return {"output": _pipeline.infer_apply(body["input"])}


@empty.post("/predict")
async def predict_nothing(request: Request) -> dict[str, Any]:
    await request.json()  # the same JSON parsing as the model's endpoint
    return {"output": None}
