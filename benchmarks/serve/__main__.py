"""``python -m benchmarks.serve``: ``padlc serve`` against the servers a user would otherwise run,
in one run, on the same artifact, interleaved.

    python -m benchmarks.serve                                    # mlp and text, c = 1, 16, 64
    python -m benchmarks.serve --workloads mlp --seconds 3 --rounds 1
    python -m benchmarks.serve --client httpx                     # httpx's AsyncClient instead

For each workload the pipeline is built once (``padlc build``, the export backend), and four
servers are started on it, side by side, each in its own process:

* ``padlc serve``: dynamic batching (``--max-batch 64``, the defaults);
* ``padlc serve --max-batch 1``: the same server, one item per forward;
* ``FastAPI + infer_apply``: the endpoint a user writes by hand (benchmarks/serve/handwritten.py);
* ``FastAPI empty endpoint``: the same endpoint without the model, the HTTP stack's own ceiling.

Every server's answers to 256 items are first checked against ``infer_apply`` in this process
(sent 16 at a time, so batches mix requests). Then, for each round, concurrency and server (the
servers' order rotating by round), a closed-loop client (:mod:`benchmarks.serve.load`) runs for
``--seconds`` after a second of warm-up; the table shows each cell's median over the rounds. The
client runs in this process: client and servers share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import math
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

import padl_runtime
import padlc
from benchmarks.serve.load import Result, closed_loop, fetch_all
from benchmarks.serve.workloads import WORKLOADS, ServeWorkload

PADLC = "padlc serve"
BATCH_1 = "padlc serve --max-batch 1"
HAND = "FastAPI + infer_apply"
EMPTY = "FastAPI empty endpoint"
SERVERS = (PADLC, BATCH_1, HAND, EMPTY)
CHECKED = 256


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]


def _command(name: str, artifact: str, port: int) -> list[str]:
    if name in (PADLC, BATCH_1):
        extra = ["--max-batch", "1"] if name == BATCH_1 else []
        return [sys.executable, "-m", "padlc", "serve", artifact, "--port", str(port),
                "--log-level", "warning", *extra]  # fmt: skip
    app = "app" if name == HAND else "empty"
    return [sys.executable, "-m", "uvicorn", f"benchmarks.serve.handwritten:{app}", "--port",
            str(port), "--log-level", "warning", "--no-access-log"]  # fmt: skip


def start(name: str, artifact: str, threads: int) -> Server:
    port = _free_port()
    env = {**os.environ, "PADL_ARTIFACT": artifact}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)  # torch's intra-op threads, the same for every server
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(_command(name, artifact, port), cwd=root, env=env)
    return Server(name, port, process)


def wait_ready(server: Server, body: bytes, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}")
        try:
            ((status, _),) = asyncio.run(fetch_all(server.port, [body], 1))
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{server.name} did not answer within {timeout:.0f} s")


def stop(server: Server) -> int:
    server.process.send_signal(signal.SIGTERM)
    try:
        return server.process.wait(30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        return server.process.wait()


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return (
            isinstance(a, int | float)
            and isinstance(b, int | float)
            and math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return bool(a == b)


def check(server: Server, bodies: list[bytes], expected: list[Any]) -> None:
    """Every answer equals infer_apply's output for its item (floats to 1e-4 relative)."""
    answers = asyncio.run(fetch_all(server.port, bodies, 16))
    for index, ((status, body), want) in enumerate(zip(answers, expected, strict=True)):
        got = json.loads(body)
        if status != 200 or not _close(got.get("output"), want):
            raise AssertionError(
                f"{server.name}: item {index} gave {status} {got}, expected {want}"
            )


def infer_p50_ms(
    pipeline: padl_runtime.CompiledPipeline, items: list[Any], calls: int = 500
) -> float:
    times = []
    for index in range(calls):
        item = items[index % len(items)]
        started = time.perf_counter()
        pipeline.infer_apply(item)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


@dataclass
class Cell:
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int


def _median(results: list[Result]) -> Cell:
    return Cell(
        statistics.median(r.rate for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.errors for r in results),
    )


def run_workload(
    workload: ServeWorkload, args: argparse.Namespace, directory: str
) -> dict[str, Any]:
    artifact = os.path.join(directory, f"{workload.name}.padl")
    items = workload.items(CHECKED, 0)
    print(f"\n== {workload.name}: {workload.description}", flush=True)
    padlc.build(workload.pipeline(), artifact, inputs=items[:8], backend=args.backend)
    pipeline = padl_runtime.load(artifact)
    expected = [json.loads(json.dumps(pipeline.infer_apply(item))) for item in items]
    bodies = [json.dumps({"input": item}).encode() for item in items]
    infer_ms = infer_p50_ms(pipeline, items)
    servers = [start(name, artifact, args.torch_threads) for name in args.servers]
    cells: dict[str, dict[int, list[Result]]] = {
        s.name: {c: [] for c in args.concurrency} for s in servers
    }
    exit_codes: dict[str, int] = {}
    try:
        for server in servers:
            wait_ready(server, bodies[0])
            if server.name != EMPTY:
                check(server, bodies, expected)
        for round_ in range(args.rounds):
            order = servers[round_ % len(servers) :] + servers[: round_ % len(servers)]
            for concurrency in args.concurrency:
                for server in order:
                    result = asyncio.run(
                        closed_loop(
                            server.port, bodies, concurrency, args.seconds, client=args.client
                        )
                    )
                    cells[server.name][concurrency].append(result)
                    print(f"  round {round_ + 1}  c={concurrency:<3} {server.name:<27} "
                          f"{result.rate:8.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
                          f"p99 {result.p99_ms:7.2f} ms  errors {result.errors}", flush=True)  # fmt: skip
    finally:
        for server in servers:
            exit_codes[server.name] = stop(server)
    table = {name: {c: _median(rs) for c, rs in by_c.items()} for name, by_c in cells.items()}
    return {"infer_apply_p50_ms": infer_ms, "table": table, "exit_codes": exit_codes}


def targets(name: str, result: dict[str, Any], concurrency: Sequence[int]) -> list[dict[str, Any]]:
    table = result["table"]
    out: list[dict[str, Any]] = []
    top = max(concurrency)

    def ratio(what: str, a: str, b: str, goal: float, c: int) -> None:
        if a in table and b in table:
            value = table[a][c].rate / table[b][c].rate
            out.append({"what": f"{name}, c={c}: {a} / {b} requests/s", "value": value,
                        "goal": f">= {goal}", "met": value >= goal})  # fmt: skip

    if name == "mlp":
        ratio("", PADLC, HAND, 1.5, top)
        ratio("", PADLC, EMPTY, 0.9, top)
    if name == "text":
        ratio("", PADLC, HAND, 3.0, top)
        ratio("", PADLC, BATCH_1, 3.0, top)
        for other in (HAND, BATCH_1):
            if PADLC in table and other in table:
                a, b = table[PADLC][top].p99_ms, table[other][top].p99_ms
                out.append({"what": f"{name}, c={top}: p99 of {PADLC} vs {other} (ms)",
                            "value": f"{a:.1f} vs {b:.1f}", "goal": "<=", "met": a <= b})  # fmt: skip
    if 1 in concurrency and PADLC in table and EMPTY in table:
        budget = result["infer_apply_p50_ms"] + table[EMPTY][1].p50_ms + 1.5
        value = table[PADLC][1].p50_ms
        out.append({"what": f"{name}, c=1: p50 of {PADLC} (ms) vs infer_apply + empty round trip + 1.5",
                    "value": f"{value:.2f} vs {budget:.2f}", "goal": "<=", "met": value <= budget})  # fmt: skip
    return out


def print_table(name: str, result: dict[str, Any], concurrency: Sequence[int]) -> None:
    print(
        f"\n{name} (median of rounds; infer_apply in-process p50 {result['infer_apply_p50_ms']:.3f} ms)"
    )
    header = f"{'server':<27}" + "".join(
        f" | c={c:<3} req/s   p50 ms   p99 ms" for c in concurrency
    )
    print(header)
    print("-" * len(header))
    for server, by_c in result["table"].items():
        row = "".join(
            f" | {by_c[c].rate:11.0f} {by_c[c].p50_ms:8.2f} {by_c[c].p99_ms:8.2f}"
            for c in concurrency
        )
        print(f"{server:<27}{row}")


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.serve", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--workloads", default="mlp,text", help="comma-separated: " + ", ".join(WORKLOADS)
    )
    parser.add_argument("--concurrency", type=_ints, default=(1, 16, 64), help="default: 1,16,64")
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="measured seconds per cell (default: 5)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every cell (default: 2)")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument("--backend", default="export", help="padlc build backend (default: export)")
    parser.add_argument("--servers", default=",".join(SERVERS), type=lambda t: tuple(t.split(",")),
                        help="comma-separated subset of: " + ",".join(SERVERS))  # fmt: skip
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="OMP_NUM_THREADS of every server (default: 1; 0 leaves torch's default, all cores)",
    )
    parser.add_argument("--json", default="", help="also write the results here")
    args = parser.parse_args(argv)
    unknown = [s for s in args.servers if s not in SERVERS]
    if unknown:
        parser.error(f"unknown server {unknown}; choose from {SERVERS}")
    results: dict[str, Any] = {}
    all_targets: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="padl-serve-bench-") as directory:
        for name in args.workloads.split(","):
            result = run_workload(WORKLOADS[name], args, directory)
            print_table(name, result, args.concurrency)
            all_targets += targets(name, result, args.concurrency)
            results[name] = result
    print("\ntargets")
    for target in all_targets:
        value = target["value"]
        shown = f"{value:.2f}" if isinstance(value, float) else value
        print(
            f"  [{'met' if target['met'] else 'MISSED'}] {target['what']}: {shown} (goal {target['goal']})"
        )
    print(f"\nexit codes after SIGTERM: { {w: r['exit_codes'] for w, r in results.items()} }")
    if args.json:
        payload = {
            "environment": {
                "command": " ".join(
                    ["python -m benchmarks.serve", *(argv if argv is not None else sys.argv[1:])]
                ),
                "date": datetime.datetime.now().isoformat(timespec="seconds"),
                "torch": torch.__version__,
                "python": platform.python_version(),
                "cpu_count": os.cpu_count(),
                "load_average": os.getloadavg(),
                "client": args.client,
            },
            "workloads": {
                w: {
                    **r,
                    "table": {
                        s: {c: asdict(cell) for c, cell in by_c.items()}
                        for s, by_c in r["table"].items()
                    },
                }
                for w, r in results.items()
            },
            "targets": all_targets,
        }
        Path(args.json).write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
