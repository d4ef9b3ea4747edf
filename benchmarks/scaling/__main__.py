"""``python -m benchmarks.scaling``: padl_runtime.ray on a local Ray, side by side with what it
is measured against, in one run.

    python -m benchmarks.scaling                                  # both parts, the defaults
    python -m benchmarks.scaling --parts data --items 100000 --rounds 3 --rows-per-call 256,2048
    python -m benchmarks.scaling --parts serve --modes direct --concurrency 1,64 --seconds 5

* ``data`` (:mod:`benchmarks.scaling.data`): Ray Data ``predict`` against ``eval_apply`` over
  the same tiny items: what Ray's machinery adds on one node;
* ``serve`` (:mod:`benchmarks.scaling.serving`): ``padl_runtime.ray.deployment`` against
  ``padlc serve`` and a hand-written ``@serve.batch`` deployment, with benchmarks/serve's
  artifact and client, and where each server's CPU time went; in each of Ray Serve's two modes
  (``--modes``: ``proxy``, Ray's defaults, and ``direct``, Ray's
  ``RAY_SERVE_THROUGHPUT_OPTIMIZED=1``), each on a Ray of its own.

The benchmark starts its own local Ray (``ray.init`` with the machine's CPUs, in a temporary
directory) and stops it at the end. Client, driver and servers share the machine's cores.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from benchmarks.scaling import data, serving
from benchmarks.scaling.cluster import on_own_ray


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def _targets(data_summary: dict[str, Any] | None, serve_summary: dict[str, Any] | None,
             concurrency: Sequence[int]) -> list[dict[str, Any]]:  # fmt: skip
    out: list[dict[str, Any]] = []
    if data_summary is not None:
        base = data_summary["eval_apply"]["end_to_end"]
        for case, row in data_summary.items():
            if case == "eval_apply" or row["steady"] is None:
                continue
            value = row["steady"] / base
            goal = "rows/call" not in case  # predict's defaults
            out.append({"what": f"Ray Data {case}, steady / eval_apply items/s", "value": value,
                        "goal": ">= 0.8" if goal else "reported",
                        "met": value >= 0.8 if goal else None})  # fmt: skip
            value = row["end_to_end"] / base
            out.append({"what": f"Ray Data {case}, end to end / eval_apply items/s",
                        "value": value, "goal": "reported", "met": None})  # fmt: skip
    for mode, by_server in (serve_summary or {}).items():
        top = max(concurrency)
        ours, hand = by_server[serving.RAY_PADL][top], by_server[serving.RAY_HAND][top]
        value = ours["rate"] / hand["rate"]
        out.append({"what": f"{mode}, c={top}: padl_runtime.ray.deployment / hand-written req/s",
                    "value": value, "goal": ">= 1.0", "met": value >= 1.0})  # fmt: skip
        value = ours["rate"] / by_server[serving.PADLC][top]["rate"]
        out.append({"what": f"{mode}, c={top}: padl_runtime.ray.deployment / padlc serve req/s",
                    "value": value, "goal": "reported", "met": None})  # fmt: skip
    return out


def _print_data(summary: dict[str, Any]) -> None:
    print("\nRay Data (median of rounds)")
    print(f"{'':<32} {'end to end items/s':>19} {'start s':>8} {'steady items/s':>15}")
    for case, row in summary.items():
        start = f"{row['start']:8.2f}" if row["start"] is not None else f"{'':>8}"
        steady = f"{row['steady']:15,.0f}" if row["steady"] is not None else f"{'':>15}"
        print(f"{case:<32} {row['end_to_end']:19,.0f} {start} {steady}")


def _print_serve(summary: dict[str, Any], concurrency: Sequence[int]) -> None:
    print("\nRay Serve (median of rounds): req/s, p50 ms, p99 ms; CPU µs per request")
    for mode, by_server in summary.items():
        print(f"  {mode}: {serving.MODES[mode] or 'Ray defaults'}")
        for name, by_c in by_server.items():
            for c in concurrency:
                cell = by_c[c]
                where = ", ".join(f"{g} {v:,.0f}" for g, v in cell["cpu_us"].items() if v >= 5)
                print(f"    {name:<40} c={c:<3} {cell['rate']:8,.0f} {cell['p50_ms']:8.2f} "
                      f"{cell['p99_ms']:8.2f}   {where}")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scaling", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--parts", default="data,serve", help="comma-separated: data, serve")
    parser.add_argument("--items", type=int, default=100_000, help="data: items (default 100000)")
    parser.add_argument("--actors", type=_ints, default=(1, 2),
                        help="data: predict's concurrency, each a row (default 1,2)")  # fmt: skip
    parser.add_argument("--rows-per-call", type=_ints, default=(),
                        help="data: also predict with 1 actor and each of these rows_per_call")  # fmt: skip
    parser.add_argument("--concurrency", type=_ints, default=(1, 64), help="serve: default 1,64")
    parser.add_argument("--modes", default="proxy,direct",
                        help="serve: Ray Serve's modes, comma-separated (default proxy,direct)")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=5.0, help="serve: seconds per cell")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every cell (default 3)")
    parser.add_argument("--json", default="", help="also write the results here")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    if not parts <= {"data", "serve"}:
        parser.error(f"unknown part in {args.parts!r}: data, serve")
    modes = args.modes.split(",") if "serve" in parts else []
    if not set(modes) <= set(serving.MODES):
        parser.error(f"unknown mode in {args.modes!r}: {', '.join(serving.MODES)}")
    data_result = data_summary = None
    serve_result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="padl-scaling-bench-") as directory:
        if "data" in parts:
            data_result = on_own_ray({}, data.run, args.items, args.rounds, args.actors,
                                     directory, args.rows_per_call)  # fmt: skip
            data_summary = data.summary(data_result)
        for mode in modes:
            serve_result[mode] = on_own_ray(serving.MODES[mode], serving.run, args.concurrency,
                                            args.seconds, args.rounds, directory, mode)  # fmt: skip
    serve_summary = {mode: serving.summary(result) for mode, result in serve_result.items()}
    if data_summary is not None:
        _print_data(data_summary)
    if serve_summary:
        _print_serve(serve_summary, args.concurrency)
    targets = _targets(data_summary, serve_summary, args.concurrency)
    print("\ntargets")
    for target in targets:
        status = {True: "met", False: "MISSED", None: "----"}[target["met"]]
        print(f"  [{status}] {target['what']}: {target['value']:.2f} (goal {target['goal']})")
    for mode, result in serve_result.items():
        print(f"\n{mode}: padlc serve's exit code after SIGTERM: {result['padlc_exit_code']}")
    if args.json:
        payload = {
            "environment": {
                "command": " ".join(["python -m benchmarks.scaling", *(argv or sys.argv[1:])]),
                "date": datetime.datetime.now().isoformat(timespec="seconds"),
                "torch": torch.__version__,
                "ray": __import__("ray").__version__,
                "python": platform.python_version(),
                "cpu_count": os.cpu_count(),
                "load_average": os.getloadavg(),
            },
            "data": None if data_result is None else {
                "items": data_result["items"], "blocks": data_result["blocks"],
                "rounds": {k: [asdict(t) for t in v] for k, v in data_result["timings"].items()},
                "summary": data_summary,
            },
            "serve": {
                mode: {"env": serving.MODES[mode], "summary": serve_summary[mode],
                       "padlc_exit_code": result["padlc_exit_code"]}
                for mode, result in serve_result.items()
            },
            "targets": targets,
        }  # fmt: skip
        Path(args.json).write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
