"""Online serving with Ray Serve: :func:`deployment` is an application answering the HTTP
contract of ``padlc serve`` (docs/serving.md), with Ray Serve's own request batching.

A replica loads the artifact once. A request's body is parsed by
:func:`~padl_runtime.serve.protocol.parse_predict` (the server's own request handling: a bad body
is the same 400, naming the field); each of its items is handed to a ``@serve.batch`` function
that runs :meth:`CompiledPipeline.apply_batch <padl_runtime.CompiledPipeline.apply_batch>` on
the items of concurrent requests (the preprocess of each, one forward, the postprocess of each);
:func:`~padl_runtime.serve.protocol.predict_reply` writes the answer (200, or 422 naming the
failing input, its stage and step: only that request fails). The Open Inference Protocol's
endpoints are answered the same way.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from padl_runtime.ray._loading import ArtifactRef, require_ray
from padl_runtime.serve.protocol import (
    Reply,
    RequestError,
    error_reply,
    infer_reply,
    live_reply,
    model_metadata_reply,
    model_name,
    parse_infer,
    parse_predict,
    predict_reply,
    ready_reply,
    server_metadata_reply,
    unknown_model_reply,
)

if TYPE_CHECKING:
    from ray.serve import Application
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["Replica", "deployment"]

_log = logging.getLogger("padl_runtime.ray")

#: Requests a replica holds at once when ``max_ongoing_requests`` is not given, per item of
#: ``max_batch_size``: Ray's own default (5) would cap every batch at 5 items.
ONGOING_PER_BATCH_ITEM = 4


def deployment(
    path: str | os.PathLike[str],
    *,
    max_batch_size: int = 64,
    batch_wait_timeout_s: float = 0.0,
    num_replicas: int | str = 1,
    ray_actor_options: dict[str, Any] | None = None,
    max_ongoing_requests: int | None = None,
    name: str | None = None,
    deployment_options: Mapping[str, Any] | None = None,
    **load_options: Any,
) -> Application:
    """A Ray Serve application serving the built artifact at ``path``: ``serve.run(app)``.

    It answers ``POST /predict`` (``{"input": item}`` or ``{"inputs": [...]}``), the Open
    Inference Protocol's ``POST /v2/models/{name}/infer`` and its health and metadata endpoints,
    with the bodies, statuses and errors of ``padlc serve``, below the application's route prefix.

    The items of concurrent requests are batched by ``@serve.batch``: at most
    ``max_batch_size`` items per forward, a batch waiting at most ``batch_wait_timeout_s`` for
    more after its first. The default, 0, runs a lone request at once, and under load a batch is
    what arrived while the previous one ran; a wait only adds latency on one node, where Ray's
    own per-request work is far larger than the forward (docs/scaling.md has the profile). Raise
    it for a costly forward per call (a GPU) with requests spread out.

    ``num_replicas`` replicas (an int, or ``"auto"`` for Ray Serve's autoscaling), each with
    ``ray_actor_options`` (``{"num_gpus": 1}``: the replica loads the artifact on ``cuda``
    unless ``device`` says otherwise), each holding at most ``max_ongoing_requests`` requests
    (default ``4 * max_batch_size``; Ray's own default, 5, would cap every batch at 5 items, and
    requests beyond it wait in Ray's proxy, whose throughput collapsed when they did).
    ``deployment_options`` go to ``serve.deployment`` (``autoscaling_config``,
    ``max_queued_requests``, ``logging_config``: replicas write no access log by default, the
    proxy's own access log has every request). ``name`` is the deployment's and the model's
    name (default: the artifact's directory name without ``.padl``).

    ``load_options`` are those of :func:`padl_runtime.load`: trust is established here, with
    your trust store and keys, and the replicas load the artifact only if its manifest is the one
    trusted here; the path must be readable at the same place on every node that runs a replica.

    With Ray's defaults every request also costs milliseconds of CPU in Ray's proxy and in the
    replica's calls back to it, far more than a small model's work; a cluster started with
    ``RAY_SERVE_THROUGHPUT_OPTIMIZED=1`` (Ray's high-throughput mode, a setting of the cluster)
    has the replica answer HTTP itself (docs/scaling.md has both measured).

    >>> from ray import serve  # doctest: +SKIP
    >>> serve.run(deployment("model.padl", num_replicas=2), route_prefix="/")  # doctest: +SKIP
    """
    serve = require_ray("ray.serve")
    options = dict(ray_actor_options or {})
    artifact = ArtifactRef.prepare(path, load_options, gpu=bool(options.get("num_gpus")))
    artifact.check_batch(max_batch_size, "max_batch_size")
    if batch_wait_timeout_s < 0:
        raise ValueError(f"batch_wait_timeout_s must be >= 0, got {batch_wait_timeout_s}.")
    ongoing = max_ongoing_requests or ONGOING_PER_BATCH_ITEM * max_batch_size
    served = name or model_name(artifact.path)
    settings: dict[str, Any] = {"logging_config": {"enable_access_log": False}}
    settings.update(deployment_options or {})
    replica = serve.deployment(
        name=served,
        num_replicas=num_replicas,
        ray_actor_options=options,
        max_ongoing_requests=ongoing,
        **settings,
    )(Replica)
    app: Application = replica.bind(artifact, served, max_batch_size, batch_wait_timeout_s)
    return app


def _response(reply: Reply) -> Response:
    from starlette.responses import Response

    return Response(reply.body, reply.status, dict(reply.headers) or None, "application/json")


class Replica:
    """One replica of the deployment: the loaded pipeline behind a ``@serve.batch`` function.

    The batch function is made per replica (not at class level), so that its queue and its
    settings belong to this replica alone."""

    def __init__(
        self,
        artifact: ArtifactRef,
        name: str,
        max_batch_size: int,
        batch_wait_timeout_s: float,
    ) -> None:
        from ray import serve

        self.pipeline = artifact.load()
        self.name = name
        self.max_batch_size = max_batch_size
        pipeline = self.pipeline

        async def apply_batch(items: list[Any]) -> list[Any]:
            return pipeline.apply_batch(items, return_exceptions=True)

        self._item: Callable[[Any], Awaitable[Any]] = serve.batch(
            max_batch_size=max_batch_size, batch_wait_timeout_s=batch_wait_timeout_s
        )(apply_batch)

    async def _results(self, items: list[Any]) -> list[Any]:
        if len(items) == 1:
            return [await self._item(items[0])]
        return list(await asyncio.gather(*map(self._item, items)))

    async def _answer(
        self,
        body: bytes,
        parse: Callable[[bytes], Any],
        reply: Callable[[Any, list[Any]], Reply],
    ) -> Reply:
        try:
            parsed = parse(body)
            return reply(parsed, await self._results(parsed.items))
        except RequestError as exc:
            return exc.reply()
        except Exception as exc:  # not an item's failure (those are ItemError results): a bug
            _log.exception("A batch failed")
            return error_reply(500, f"The batch of this request failed: {exc!r}")

    async def __call__(self, request: Request) -> Response:
        scope = request.scope
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        return _response(await self._route(request, request.method, path))

    async def _route(self, request: Request, method: str, path: str) -> Reply:
        if method == "POST":
            if path == "/predict":
                return await self._answer(await request.body(), parse_predict, predict_reply)
            if path.startswith("/v2/models/") and path.endswith("/infer"):
                name = path[len("/v2/models/") : -len("/infer")]
                if name != self.name:
                    return unknown_model_reply(name, self.name)
                return await self._answer(
                    await request.body(),
                    parse_infer,
                    lambda parsed, results: infer_reply(self.name, parsed, results),
                )
        elif method == "GET":
            if path == "/v2/health/live":
                return live_reply()
            if path == "/v2/health/ready":
                return ready_reply(True)
            if path == "/v2":
                return server_metadata_reply()
            if path.startswith("/v2/models/"):
                name, _, rest = path[len("/v2/models/") :].partition("/")
                if name != self.name:
                    return unknown_model_reply(name, self.name)
                if rest == "ready":
                    return ready_reply(True)
                if rest == "":
                    platform = f"padl_{self.pipeline.backend.name}"
                    return model_metadata_reply(
                        self.name, self.pipeline.manifest, platform, self.max_batch_size
                    )
        return error_reply(404, f"Not Found: {method} {path}")
