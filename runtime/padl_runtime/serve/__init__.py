"""Serving a built artifact over HTTP: ``python -m padl_runtime serve model.padl`` (or
``padlc serve``), with dynamic batching that knows the pipeline's stages.

The pieces, each usable on its own (the Ray adapters reuse the first two):

* :mod:`~padl_runtime.serve.codec`: items from JSON, outputs to JSON, Open Inference Protocol
  tensors (no web framework needed);
* :mod:`~padl_runtime.serve.protocol`: request bodies to raw items, results to replies (status
  and JSON body; no web framework needed);
* :mod:`~padl_runtime.serve.batcher`: the dynamic batcher over
  :meth:`CompiledPipeline.forward_items <padl_runtime.CompiledPipeline.forward_items>`;
* :mod:`~padl_runtime.serve.app`: the Starlette app; :mod:`~padl_runtime.serve.server`: uvicorn.

The server needs the ``serve`` extra (``pip install 'padl-runtime[serve]'``): uvicorn,
Starlette and prometheus-client. The codec and the request handling need only the runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from padl_runtime.serve.codec import decode_item, encode_output
from padl_runtime.serve.options import ServeOptions
from padl_runtime.serve.protocol import (
    InferRequest,
    PredictRequest,
    Reply,
    RequestError,
    infer_reply,
    parse_infer,
    parse_predict,
    predict_reply,
)

if TYPE_CHECKING:
    from padl_runtime.serve.app import create_app
    from padl_runtime.serve.server import serve

__all__ = [
    "InferRequest",
    "PredictRequest",
    "Reply",
    "RequestError",
    "ServeOptions",
    "create_app",
    "decode_item",
    "encode_output",
    "infer_reply",
    "parse_infer",
    "parse_predict",
    "predict_reply",
    "serve",
]


def __getattr__(name: str) -> Any:
    # The server's own dependencies (uvicorn, Starlette) are imported only when it is used.
    if name == "create_app":
        from padl_runtime.serve.app import create_app

        return create_app
    if name == "serve":
        from padl_runtime.serve.server import serve

        return serve
    raise AttributeError(f"module 'padl_runtime.serve' has no attribute {name!r}")
