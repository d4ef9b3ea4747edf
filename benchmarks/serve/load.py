"""A closed-loop load generator: N connections, each sending a request as soon as the previous
answer arrived, for a fixed time; requests/s and latency percentiles of what completed.

Two clients. ``raw`` (the default) is a minimal HTTP/1.1 keep-alive client on asyncio's protocols:
a request is a prepared byte string, a response is read by its Content-Length (or its chunks, as
Ray Serve's proxy sends some answers), about 30 µs of the client's CPU a request. ``httpx`` is
httpx's AsyncClient, one per connection (a shared pool costs more still): on this project's 2-core
machine it tops out near 1,000 requests/s whatever the server, so it measures httpx rather than
the servers, and the client and server share the CPUs.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Result", "closed_loop", "fetch_all", "request_bytes"]


@dataclass(frozen=True)
class Result:
    concurrency: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def request_bytes(path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


def _dechunk(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """A chunked body starting at ``start``: ``(body, end)``, or None while it is incomplete."""
    parts = []
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size = int(bytes(buffer[position:line_end]).split(b";")[0], 16)
        chunk_start = line_end + 2
        if size == 0:
            if len(buffer) < chunk_start + 2:  # the empty line after the last chunk (no trailers)
                return None
            return b"".join(parts), chunk_start + 2
        if len(buffer) < chunk_start + size + 2:
            return None
        parts.append(bytes(buffer[chunk_start : chunk_start + size]))
        position = chunk_start + size + 2


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("the server closed the connection"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        start = head.find(b"content-length:")
        if start >= 0:
            stop = head.find(b"\r\n", start)
            length = int(head[start + 15 : stop if stop > 0 else None])
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            consumed = end + 4 + length
        elif b"transfer-encoding: chunked" in head:  # Ray Serve's proxy streams some answers
            chunked = _dechunk(self.buffer, end + 4)
            if chunked is None:
                return
            body, consumed = chunked
        else:
            raise ConnectionError("a response with neither Content-Length nor chunks")
        status = int(head[9:12])
        del self.buffer[:consumed]
        waiter, self.waiter = self.waiter, None
        if waiter is not None:
            waiter.set_result((status, body))

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter


async def _raw_worker(port: int, requests: Sequence[bytes], offset: int, run: _Run) -> None:
    loop = asyncio.get_running_loop()
    transport, connection = await loop.create_connection(_Connection, "127.0.0.1", port)
    try:
        index = offset
        while not run.stopped:
            request = requests[index % len(requests)]
            index += 1
            started = time.perf_counter()
            status, _ = await connection.send(request)
            run.record(started, status)
    finally:
        transport.close()


async def _httpx_worker(port: int, bodies: Sequence[bytes], offset: int, run: _Run) -> None:
    import httpx

    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        index = offset
        while not run.stopped:
            body = bodies[index % len(bodies)]
            index += 1
            started = time.perf_counter()
            response = await client.post(run.path, content=body, headers=headers)
            run.record(started, response.status_code)


class _Run:
    def __init__(self, path: str, warmup: float, seconds: float) -> None:
        now = time.perf_counter()
        self.path = path
        self.begin = now + warmup
        self.end = self.begin + seconds
        self.latencies: list[float] = []
        self.errors = 0
        self.stopped = False

    def record(self, started: float, status: int) -> None:
        now = time.perf_counter()
        if now >= self.end:
            self.stopped = True
            return
        if started >= self.begin:
            if status == 200:
                self.latencies.append(now - started)
            else:
                self.errors += 1


async def closed_loop(
    port: int,
    bodies: Sequence[bytes],
    concurrency: int,
    seconds: float,
    warmup: float = 1.0,
    path: str = "/predict",
    client: str = "raw",
) -> Result:
    """Run ``concurrency`` connections against ``port`` for ``warmup + seconds``; what completed
    in the last ``seconds`` is the result. Request bodies are cycled, each connection starting
    at another one."""
    run = _Run(path, warmup, seconds)
    if client == "raw":
        requests = [request_bytes(path, body) for body in bodies]
        workers = [_raw_worker(port, requests, i * 7, run) for i in range(concurrency)]
    elif client == "httpx":
        workers = [_httpx_worker(port, bodies, i * 7, run) for i in range(concurrency)]
    else:
        raise ValueError(f"unknown client {client!r} (raw or httpx)")
    await asyncio.gather(*workers)
    latencies = sorted(run.latencies) or [float("nan")]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return Result(
        concurrency,
        len(run.latencies),
        seconds,
        statistics.median(latencies) * 1e3,
        p99 * 1e3,
        run.errors,
    )


async def fetch_all(
    port: int, bodies: Sequence[bytes], concurrency: int, path: str = "/predict"
) -> list[tuple[int, bytes]]:
    """Every body sent once, ``concurrency`` at a time; ``(status, body)`` of each, in order."""
    loop = asyncio.get_running_loop()
    results: list[tuple[int, bytes]] = [(0, b"")] * len(bodies)
    indices = iter(range(len(bodies)))

    async def worker() -> None:
        transport, connection = await loop.create_connection(_Connection, "127.0.0.1", port)
        try:
            for index in indices:
                results[index] = await connection.send(request_bytes(path, bodies[index]))
        finally:
            transport.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results
