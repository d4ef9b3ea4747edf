"""The ASGI app (Starlette): ``POST /predict``, the Open Inference Protocol's REST endpoints and
``GET /metrics``, around one :class:`~padl_runtime.serve.batcher.Batcher`.

Starlette rather than FastAPI: the request path is the product here, and FastAPI's per-request
work (dependency resolution, pydantic validation and serialization) is paid on every request,
while the bodies are checked by :mod:`padl_runtime.serve.protocol` anyway, with messages that
name the field (docs/serving.md has the measurement).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from padl_runtime.pipeline import CompiledPipeline
from padl_runtime.serve.batcher import Batcher, Overloaded
from padl_runtime.serve.metrics import CONTENT_TYPE, Metrics
from padl_runtime.serve.options import ServeOptions
from padl_runtime.serve.protocol import (
    InferRequest,
    Reply,
    RequestError,
    error_reply,
    infer_reply,
    live_reply,
    model_metadata_reply,
    parse_infer,
    parse_predict,
    predict_reply,
    ready_reply,
    server_metadata_reply,
    unknown_model_reply,
)
from padl_runtime.serve.protocol import model_name as _name_of

__all__ = ["ServerState", "ServingApp", "create_app", "model_name"]

_JSON = "application/json"


def model_name(pipeline: CompiledPipeline) -> str:
    """The artifact's name in the Open Inference Protocol's paths: its directory's name without
    ``.padl``."""
    return _name_of(pipeline.root)


@dataclass
class ServerState:
    """What the endpoints share: the batcher, the metrics, and whether the server is draining
    (after SIGTERM: not ready, finishing what it has)."""

    pipeline: CompiledPipeline
    batcher: Batcher
    metrics: Metrics
    name: str
    draining: bool = False


def _response(reply: Reply) -> Response:
    return Response(reply.body, reply.status, dict(reply.headers) or None, _JSON)


def create_app(pipeline: CompiledPipeline, options: ServeOptions | None = None) -> ServingApp:
    """The server's ASGI app for a loaded pipeline. The batcher starts and stops with the app's
    lifespan; ``app.state.server`` is its :class:`ServerState`."""
    options = options or ServeOptions()
    metrics = Metrics()
    max_batch = options.max_batch
    if pipeline.max_batch is not None:
        max_batch = min(max_batch, pipeline.max_batch)
    batcher = Batcher(
        pipeline,
        max_batch=max_batch,
        max_wait=options.max_wait_ms / 1000,
        max_queue=options.max_queue,
        timeout=options.timeout,
        workers=options.workers,
        metrics=metrics,
    )
    state = ServerState(pipeline, batcher, metrics, options.model_name or model_name(pipeline))
    request_seconds = {e: metrics.request_seconds.labels(e) for e in ("predict", "infer")}
    counted: dict[tuple[str, int], Any] = {}

    def count(endpoint: str, status: int) -> None:
        child = counted.get((endpoint, status))
        if child is None:
            child = counted[endpoint, status] = metrics.requests.labels(endpoint, str(status))
        child.inc()

    async def run(
        endpoint: str,
        body: Awaitable[bytes],
        parse: Callable[[bytes], Any],
        reply: Callable[[Any, list[Any]], Reply],
    ) -> Reply:
        started = time.perf_counter()
        batcher.arriving(1)
        try:
            try:
                parsed = parse(await body)
                future = batcher.submit(parsed.items)
            finally:
                batcher.arriving(-1)
            answer = reply(parsed, await future)
        except RequestError as exc:
            answer = exc.reply()
        except Overloaded as exc:
            answer = error_reply(503, str(exc), headers=(("Retry-After", str(exc.retry_after)),))
        except TimeoutError as exc:
            answer = error_reply(504, str(exc))
        count(endpoint, answer.status)
        request_seconds[endpoint].observe(time.perf_counter() - started)
        return answer

    def infer_answer(parsed: InferRequest, results: list[Any]) -> Reply:
        return infer_reply(state.name, parsed, results)

    async def predict_reply_of(body: Awaitable[bytes]) -> Reply:
        return await run("predict", body, parse_predict, predict_reply)

    async def infer_reply_of(name: str, body: Awaitable[bytes]) -> Reply:
        if name != state.name:
            count("infer", 404)
            return unknown_model_reply(name, state.name)
        return await run("infer", body, parse_infer, infer_answer)

    async def predict(request: Request) -> Response:
        return _response(await predict_reply_of(request.body()))

    async def infer(request: Request) -> Response:
        return _response(await infer_reply_of(request.path_params["name"], request.body()))

    async def live(request: Request) -> Response:
        return _response(live_reply())

    async def ready(request: Request) -> Response:
        return _response(ready_reply(not state.draining))

    async def server_metadata(request: Request) -> Response:
        return _response(server_metadata_reply())

    async def model_metadata(request: Request) -> Response:
        name = request.path_params["name"]
        if name != state.name:
            return _response(unknown_model_reply(name, state.name))
        platform = f"padl_{state.pipeline.backend.name}"
        return _response(
            model_metadata_reply(name, state.pipeline.manifest, platform, state.batcher.max_batch)
        )

    async def model_ready(request: Request) -> Response:
        name = request.path_params["name"]
        if name != state.name:
            return _response(unknown_model_reply(name, state.name))
        return await ready(request)

    async def prometheus(request: Request) -> Response:
        metrics.queue_depth.set(batcher.depth)
        return Response(metrics.render(), 200, media_type=CONTENT_TYPE)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(batcher.start, asyncio.get_running_loop())
        try:
            yield
        finally:
            # uvicorn has waited for the requests in flight: the queue is empty or nearly so
            await asyncio.to_thread(batcher.close, options.timeout)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _response(
            error_reply(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}")
        )

    routes = [
        Route("/predict", predict, methods=["POST"]),
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2/models/{name}", model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ]
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        HTTPException: http_error
    }
    router = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    router.state.server = state
    return ServingApp(router, predict_reply_of, infer_reply_of)


class ServingApp:
    """The server's ASGI app: ``POST /predict`` and ``POST /v2/models/{name}/infer`` answered by a
    few lines of plain ASGI, everything else (and the lifespan) by the Starlette app ``router``.

    The two inference endpoints are the request path the server exists for; going around
    Starlette's request and response objects and its routing saves about a quarter of the server's
    CPU time per request on the mlp benchmark (``python -m benchmarks.serve``). Both ways run the
    same handlers, so the answers are the same.
    """

    def __init__(
        self,
        router: Starlette,
        predict: Callable[[Awaitable[bytes]], Awaitable[Reply]],
        infer: Callable[[str, Awaitable[bytes]], Awaitable[Reply]],
    ) -> None:
        self.router = router
        self._predict = predict
        self._infer = infer

    @property
    def state(self) -> Any:
        return self.router.state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            reply: Awaitable[Reply] | None = None
            if path == "/predict":
                reply = self._predict(_body(receive))
            elif path.startswith("/v2/models/") and path.endswith("/infer"):
                name = path[len("/v2/models/") : -len("/infer")]
                if name and "/" not in name:
                    reply = self._infer(name, _body(receive))
            if reply is not None:
                with contextlib.suppress(_Disconnected):  # else nobody is left to answer
                    await _send(send, await reply)
                return
        await self.router(scope, receive, send)


class _Disconnected(Exception):
    """The client went away before sending the whole body."""


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


_CONTENT_TYPE = (b"content-type", b"application/json")


async def _send(send: Any, reply: Reply) -> None:
    headers = [_CONTENT_TYPE, (b"content-length", str(len(reply.body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in reply.headers]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})
