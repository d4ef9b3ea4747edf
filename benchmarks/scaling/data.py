"""Ray Data ``padl_runtime.ray.predict`` against ``eval_apply`` over the same tiny items, side by
side, interleaved by round.

The dataset is made (``ray.data.from_items``, Ray's default blocks) and materialized before any
timing: reading data is not the pipeline's cost. For ``predict`` (``.materialize()``: every output
computed and stored in Ray's object store) three figures are taken:

* **end to end**: items / seconds from the call until every output is stored, actor start
  included;
* **start**: seconds from the call until an actor starts its first task (an actor process
  starting, importing torch, loading the artifact);
* **steady**: items / seconds from the first task's start to the last task's end, as Ray Data
  records them: the rate once the actors run, Ray's work between tasks included;

and the CPU time every process spent during the call (from /proc), per item: this process (Ray
Data's driver, its streaming executor), the actors, the rest of Ray.

``eval_apply`` runs in this process, as a user runs it (``list(pipeline.eval_apply(items,
batch_size=256))``, torch's default threads). The first round checks that every row's output
equals ``eval_apply``'s for its item.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import torch

import padl_runtime
import padlc
from benchmarks import tiny
from benchmarks.scaling.cpu import snapshot, spent


@dataclass
class Timing:
    seconds: float
    start: float | None = None
    steady: float | None = None  # items/s while the actors ran tasks
    cpu_us: dict[str, float] = field(default_factory=dict)  # CPU µs per item, by process group

    def rate(self, items: int) -> float:
        return items / self.seconds


def build(directory: str) -> str:
    pipeline = tiny.WORKLOAD.pipeline(tiny.make_model())
    items = tiny.make_items(8, 1)
    return str(padlc.build(pipeline, os.path.join(directory, "tiny.padl"), inputs=items).path)


def time_eval_apply(pipeline: padl_runtime.CompiledPipeline, items: list[Any]) -> Timing:
    before = snapshot()
    started = time.perf_counter()
    outputs = list(pipeline.eval_apply(items, batch_size=256))
    elapsed = time.perf_counter() - started
    used = spent(before, snapshot(), _group)
    assert len(outputs) == len(items)
    return Timing(elapsed, cpu_us={k: 1e6 * v / len(items) for k, v in sorted(used.items())})


def time_predict(
    ds: Any, artifact: str, count: int, expected: list[Any] | None, **options: Any
) -> Timing:
    import padl_runtime.ray

    before = snapshot()
    started = time.perf_counter()
    result = padl_runtime.ray.predict(ds, artifact, **options).materialize()
    elapsed = time.perf_counter() - started
    used = spent(before, snapshot(), _group)
    cpu_us = {k: 1e6 * v / count for k, v in sorted(used.items())}
    # Ray Data's own record of the map operator (time.perf_counter in the actors): from its first
    # task's start (the actors have started and loaded the artifact) to its last task's end.
    summary = result._get_stats_summary()  # a private API, read only by this benchmark
    (operator,) = [o for o in summary.operators_stats if "Predictor" in o.operator_name]
    first, last = operator.earliest_start_time, operator.latest_end_time
    rows = 0
    for batch in result.iter_batches(batch_size=None, batch_format="pyarrow"):
        rows += batch.num_rows
        if expected is not None:
            ids, outputs = batch.column("id").to_pylist(), batch.column("output").to_pylist()
            wrong = [i for i, o in zip(ids, outputs, strict=True) if o != expected[i]]
            if wrong:
                raise AssertionError(f"predict's output for item {wrong[0]} is not eval_apply's")
    if rows != count:
        raise AssertionError(f"predict gave {rows} rows for {count} items")
    if first is None or last is None or last <= first:
        return Timing(elapsed, cpu_us=cpu_us)
    # perf_counter: CLOCK_MONOTONIC, one clock for every process of the machine
    return Timing(elapsed, first - started, count / (last - first), cpu_us)


def _group(pid: int, command: str) -> str:
    if pid == os.getpid():
        return "driver"
    if "MapWorker" in command:
        return "actors"
    return "Ray, other" if "ray" in command else "rest"


def run(count: int, rounds: int, concurrency: tuple[int, ...], directory: str,
        rows_per_call: tuple[int, ...] = ()) -> dict[str, Any]:  # fmt: skip
    """``eval_apply``, ``predict`` with each of ``concurrency`` actors (predict's defaults), and
    ``predict`` with one actor handed each of ``rows_per_call`` rows per call."""
    import ray

    artifact = build(directory)
    pipeline = padl_runtime.load(artifact)
    items = tiny.make_items(count, 0)
    expected = list(pipeline.eval_apply(items, batch_size=256))
    ds = ray.data.from_items([{"id": i, "item": x} for i, x in enumerate(items)]).materialize()
    options = (
        {"eval_apply": {}}
        | {f"predict, {n} actor{'s' if n > 1 else ''}": {"concurrency": n} for n in concurrency}
        | {f"predict, 1 actor, {r} rows/call": {"rows_per_call": r} for r in rows_per_call}
    )
    cases = list(options)
    timings: dict[str, list[Timing]] = {case: [] for case in cases}
    print(f"\n== Ray Data: {count:,} tiny items ({tiny.WORKLOAD.description}), "
          f"{ds.num_blocks()} blocks; torch threads here {torch.get_num_threads()}", flush=True)  # fmt: skip
    for round_ in range(rounds):
        order = cases[round_ % len(cases) :] + cases[: round_ % len(cases)]
        for case in order:
            if case == "eval_apply":
                timing = time_eval_apply(pipeline, items)
            else:
                check = expected if round_ == 0 else None
                timing = time_predict(ds, artifact, count, check, **options[case])
            timings[case].append(timing)
            extra = (
                f"  start {timing.start:5.2f} s  steady {timing.steady:9,.0f} items/s"
                if timing.start is not None and timing.steady is not None
                else ""
            )
            if timing.cpu_us:
                where = ", ".join(f"{k} {v:,.1f}" for k, v in timing.cpu_us.items() if v >= 0.1)
                extra += f"  [CPU µs/item: {where}]"
            print(f"  round {round_ + 1}  {case:<30} {timing.rate(count):9,.0f} items/s end to end"
                  f"{extra}", flush=True)  # fmt: skip
    return {"items": count, "blocks": ds.num_blocks(), "timings": timings}


def summary(result: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Medians over the rounds: end-to-end items/s, start seconds, steady items/s."""
    count = result["items"]
    out: dict[str, dict[str, float | None]] = {}
    for case, timings in result["timings"].items():
        starts = [t.start for t in timings if t.start is not None]
        steady = [t.steady for t in timings if t.steady is not None]
        out[case] = {
            "end_to_end": statistics.median(t.rate(count) for t in timings),
            "start": statistics.median(starts) if starts else None,
            "steady": statistics.median(steady) if steady else None,
        }
    return out
