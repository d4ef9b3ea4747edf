"""``padl_runtime.ray.deployment`` against ``padlc serve`` and a hand-written Ray Serve deployment
(``@serve.batch`` over ``eval_apply``, benchmarks/scaling/handwritten.py), on the same artifact
(benchmarks/serve's mlp), with the same client (benchmarks/serve/load.py), interleaved by round.

All three servers run for the whole measurement (the two Ray applications under their own route
prefixes on one Ray Serve proxy). Before timing, every server's answers to 256 items are checked
against ``infer_apply``. During each measured window the CPU time of every process is read from
/proc, so that each cell also says where the time went (CPU µs per request: the server or Ray's
proxy and replica, the rest of Ray, the client).

Ray Serve is measured in the two ways a cluster can run it (``MODES``), each on a Ray of its own
with ``padlc serve`` measured beside it:

* ``proxy``: Ray's defaults. A request goes to Ray's HTTP proxy (an actor), which calls the
  replica (an actor call); the replica calls the proxy back for the request's body and its end
  (``receive_asgi_messages``), each call a few milliseconds of Python in Ray's core worker;
* ``direct``: ``RAY_SERVE_THROUGHPUT_OPTIMIZED=1`` in the environment Ray starts in (Ray's
  high-throughput mode): the ingress replica serves HTTP itself, on a port of its own
  (``RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT``, 30000, upwards), found here by asking each.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import padlc
from benchmarks.scaling.cpu import snapshot, spent
from benchmarks.serve.__main__ import PADLC, Server, _close, start, stop, wait_ready
from benchmarks.serve.load import Result, closed_loop, fetch_all
from benchmarks.serve.workloads import WORKLOADS

RAY_PADL = "Ray Serve: padl_runtime.ray.deployment"
RAY_HAND = "Ray Serve: hand-written @serve.batch"
SERVERS = (PADLC, RAY_PADL, RAY_HAND)
CHECKED = 256
#: How Ray Serve runs: the environment the local Ray starts in
MODES: dict[str, dict[str, str]] = {
    "proxy": {},
    "direct": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
}
DIRECT_PORTS = range(30000, 30064)  # where Ray gives ingress replicas their ports


@dataclass
class Endpoint:
    name: str
    port: int
    path: str
    group: Callable[[int, str], str]


@dataclass
class Cell:
    result: Result
    cpu_us: dict[str, float]  # CPU µs per request, by process group


def _padlc_group(server: Server) -> Callable[[int, str], str]:
    me = os.getpid()

    def group(pid: int, command: str) -> str:
        if pid == server.process.pid:
            return "server"
        return "client" if pid == me else ("Ray, idle" if "ray" in command else "rest")

    return group


def _ray_group(app: str) -> Callable[[int, str], str]:
    me = os.getpid()

    def group(pid: int, command: str) -> str:
        if pid == me:
            return "client"
        if "ProxyActor" in command:
            return "Ray proxy"
        if f"ServeReplica:{app}:" in command:
            return "Ray replica"
        return "Ray, other" if "ray" in command else "rest"

    return group


async def _measure(endpoint: Endpoint, bodies: list[bytes], concurrency: int, seconds: float,
                   warmup: float = 1.0) -> Cell:  # fmt: skip
    marks: list[Any] = []

    async def mark() -> None:
        await asyncio.sleep(warmup)
        marks.append(snapshot())
        await asyncio.sleep(seconds)
        marks.append(snapshot())

    result, _ = await asyncio.gather(
        closed_loop(endpoint.port, bodies, concurrency, seconds, warmup, path=endpoint.path),
        mark(),
    )
    used = spent(marks[0], marks[1], endpoint.group)
    per = max(result.requests, 1)
    return Cell(result, {k: 1e6 * v / per for k, v in sorted(used.items())})


def _check(endpoint: Endpoint, bodies: list[bytes], expected: list[Any]) -> None:
    answers = asyncio.run(fetch_all(endpoint.port, bodies, 16, path=endpoint.path))
    for index, ((status, body), want) in enumerate(zip(answers, expected, strict=True)):
        got = json.loads(body)
        if status != 200 or not _close(got.get("output"), want):
            raise AssertionError(f"{endpoint.name}: item {index} gave {status} {got}, not {want}")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _direct_port(path: str, body: bytes) -> int:
    """The port of the ingress replica answering ``path`` (direct ingress)."""
    for port in DIRECT_PORTS:
        try:
            ((status, _),) = asyncio.run(fetch_all(port, [body], 1, path=path))
        except OSError:
            continue
        if status == 200:
            return port
    raise RuntimeError(f"No replica in ports {DIRECT_PORTS} answers POST {path}")


def build(directory: str) -> str:
    workload = WORKLOADS["mlp"]
    artifact = os.path.join(directory, "mlp.padl")
    if not os.path.exists(artifact):
        items = workload.items(8, 0)
        padlc.build(workload.pipeline(), artifact, inputs=items, backend="export")
    return artifact


def run(concurrency: tuple[int, ...], seconds: float, rounds: int, directory: str, mode: str
        ) -> dict[str, Any]:  # fmt: skip
    """One mode's measurement, on the local Ray started with ``MODES[mode]``."""
    from ray import serve

    import padl_runtime.ray
    from benchmarks.scaling.handwritten import Handwritten

    workload = WORKLOADS["mlp"]
    artifact = build(directory)
    items = workload.items(CHECKED, 0)
    pipeline = padl_runtime.load(artifact)
    expected = [json.loads(json.dumps(pipeline.infer_apply(item))) for item in items]
    bodies = [json.dumps({"input": item}).encode() for item in items]
    print(f"\n== Ray Serve ({mode}: {MODES[mode] or 'Ray defaults'}): {workload.name} "
          f"({workload.description}), one item per request", flush=True)  # fmt: skip

    padlc_server = start(PADLC, artifact, threads=1)
    ray_port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": ray_port})
    serve.run(padl_runtime.ray.deployment(artifact), name="padl", route_prefix="/padl")
    serve.run(Handwritten.bind(artifact), name="hand", route_prefix="/hand")
    padl_port = hand_port = ray_port
    if mode == "direct":
        padl_port = _direct_port("/padl/predict", bodies[0])
        hand_port = _direct_port("/hand/predict", bodies[0])
    endpoints = [
        Endpoint(PADLC, padlc_server.port, "/predict", _padlc_group(padlc_server)),
        Endpoint(RAY_PADL, padl_port, "/padl/predict", _ray_group("padl")),
        Endpoint(RAY_HAND, hand_port, "/hand/predict", _ray_group("hand")),
    ]
    cells: dict[str, dict[int, list[Cell]]] = {
        e.name: {c: [] for c in concurrency} for e in endpoints
    }
    try:
        wait_ready(padlc_server, bodies[0])
        for endpoint in endpoints:
            _check(endpoint, bodies, expected)
        for round_ in range(rounds):
            order = endpoints[round_ % len(endpoints) :] + endpoints[: round_ % len(endpoints)]
            for c in concurrency:
                for endpoint in order:
                    cell = asyncio.run(_measure(endpoint, bodies, c, seconds))
                    cells[endpoint.name][c].append(cell)
                    r = cell.result
                    where = ", ".join(f"{k} {v:,.0f}" for k, v in cell.cpu_us.items() if v >= 5)
                    print(f"  {mode:<6} round {round_ + 1}  c={c:<3} {endpoint.name:<40} {r.rate:7,.0f} req/s  "
                          f"p50 {r.p50_ms:7.2f} ms  p99 {r.p99_ms:7.2f} ms  errors {r.errors}  "
                          f"[CPU µs/request: {where}]", flush=True)  # fmt: skip
    finally:
        exit_code = stop(padlc_server)
        serve.delete("padl")
        serve.delete("hand")
    return {"cells": cells, "padlc_exit_code": exit_code}


def summary(result: dict[str, Any]) -> dict[str, dict[int, dict[str, Any]]]:
    """Medians over the rounds of each cell: requests/s, p50, p99, CPU µs per request by group."""
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for name, by_c in result["cells"].items():
        out[name] = {}
        for c, cells in by_c.items():
            groups = sorted({g for cell in cells for g in cell.cpu_us})
            out[name][c] = {
                "rate": statistics.median(cell.result.rate for cell in cells),
                "p50_ms": statistics.median(cell.result.p50_ms for cell in cells),
                "p99_ms": statistics.median(cell.result.p99_ms for cell in cells),
                "errors": sum(cell.result.errors for cell in cells),
                "cpu_us": {
                    g: statistics.median(cell.cpu_us.get(g, 0.0) for cell in cells) for g in groups
                },
            }
    return out
