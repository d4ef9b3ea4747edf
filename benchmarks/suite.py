"""``python -m benchmarks``: every workload's stages alone, the hand-written loop, padlc's eager
``eval_apply`` and each built backend, side by side in one process; ``infer_apply`` latency.

    python -m benchmarks                                   # CPU, small sizes, a few minutes on 2 cores
    python -m benchmarks --workers 0,2 --workloads tiny,image
    python -m benchmarks --device cuda --size full --workers 8 --batch-size 256   # an H100
    python -m benchmarks --memory                          # RSS of eval_apply over 100k tiny items
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

import padlc
from benchmarks import built, handwritten, image, memory, report, tabular, text, tiny
from benchmarks.measure import Run, best_rates, drain, latencies
from benchmarks.workload import Workload, assert_same

WORKLOADS: dict[str, Workload] = {
    w.name: w for w in (image.WORKLOAD, text.WORKLOAD, tiny.WORKLOAD, tabular.WORKLOAD)
}
STAGES = ("preprocess alone", "forward alone", "postprocess alone")
#: Items compared between padlc and the hand-written loop before anything is timed.
CHECKED_ITEMS = 512
#: Distinct pre-collated batches kept for "forward alone" (cycled), so memory stays bounded.
FORWARD_BATCHES = 16
LATENCY_CALLS = {"small": 300, "full": 2000}


@dataclass(frozen=True)
class Options:
    device: torch.device
    batch_size: int
    workers: tuple[int, ...]
    items: int | None
    size: str
    workloads: tuple[str, ...]
    backends: tuple[str, ...]
    repeat: int
    latency_calls: int
    memory: bool
    memory_items: int
    json_path: str
    post_threads: tuple[int, ...] = ()
    post_workers: tuple[int, ...] = ()


def parse(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--workers", default="0", help="DataLoader workers; a comma list runs each (e.g. 0,2)"
    )
    parser.add_argument(
        "--items", type=int, default=None, help="items per workload (default: by --size)"
    )
    parser.add_argument(
        "--size",
        choices=("small", "full"),
        default="small",
        help="small: a laptop CPU; full: a GPU",
    )
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), help=f"comma list of {', '.join(WORKLOADS)}"
    )
    parser.add_argument(
        "--backends",
        default=",".join(built.DEFAULT_BACKENDS),
        help=f"comma list of {', '.join(built.BACKENDS)}; 'none' for none",
    )
    parser.add_argument(
        "--aoti", action="store_true", help="also build AOTInductor (compiles for about a minute)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads in the main process (default: torch's own choice)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds; each figure is the best round"
    )
    parser.add_argument(
        "--latency-calls", type=int, default=None, help="single-item calls per contender"
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="only measure RSS of eval_apply over --memory-items tiny items",
    )
    parser.add_argument("--memory-items", type=int, default=100_000)
    parser.add_argument(
        "--post-threads",
        default="",
        help="comma list: also time every eval_apply with this many post threads (rows named "
        "'... (post threads N)'); the plain rows use the executor's default (1 on CUDA, 0 on CPU)",
    )
    parser.add_argument(
        "--post-workers",
        default="",
        help="comma list: also time every eval_apply with the post stage in this many worker "
        "processes (rows named '... (post workers N)')",
    )
    parser.add_argument(
        "--json", dest="json_path", default=None, help="default benchmarks/results/<timestamp>.json"
    )
    args = parser.parse_args(argv)

    workloads = tuple(name for name in args.workloads.split(",") if name)
    unknown = sorted(set(workloads) - WORKLOADS.keys())
    if unknown:
        parser.error(
            f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}"
        )
    backends = () if args.backends == "none" else tuple(b for b in args.backends.split(",") if b)
    if args.aoti and "aoti" not in backends:
        backends += ("aoti",)
    unknown = sorted(set(backends) - set(built.BACKENDS))
    if unknown:
        parser.error(
            f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(built.BACKENDS)}"
        )
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here")
    if device.type == "cuda":
        # Every contender computes in full float32, so that outputs can be compared at 1e-4:
        # with TF32 convolutions, reordered sums (compiled backends) differ by ~1e-3.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Options(
        device=device,
        batch_size=args.batch_size,
        workers=tuple(int(w) for w in args.workers.split(",")),
        items=args.items,
        size=args.size,
        workloads=workloads,
        backends=backends,
        repeat=args.repeat,
        latency_calls=args.latency_calls or LATENCY_CALLS[args.size],
        memory=args.memory,
        memory_items=args.memory_items,
        json_path=args.json_path
        or os.path.join(os.path.dirname(__file__), "results", f"{stamp}.json"),
        post_threads=tuple(int(n) for n in args.post_threads.split(",") if n),
        post_workers=tuple(int(n) for n in args.post_workers.split(",") if n),
    )


def collect(run: Callable[[Callable[[Any], Any]], int]) -> list[Any]:
    outputs: list[Any] = []
    run(outputs.append)
    return outputs


def check(setup: handwritten.Setup, appliers: dict[str, Any], options: Options) -> dict[str, str]:
    """Every contender's outputs against the hand-written loop's on the first items, before timing.

    Returns the contenders whose outputs differ (name → the first difference): they are left out
    of the timing, so no figure is reported for wrong results, and the rest of the suite goes on.
    """
    items = setup.items[:CHECKED_ITEMS]
    small = handwritten.Setup(setup.workload, setup.model, items, setup.device, setup.batch_size)
    expected = collect(lambda sink: handwritten.loop(small, 0, sink))
    if setup.workload.padl_style:
        assert_same(
            expected,
            collect(lambda sink: handwritten.padl_style_loop(small, 0, sink)),
            "PADL-style loop",
        )
    few = items[:16]
    hand_single = handwritten.single(setup)
    assert_same(expected[:16], [hand_single(item) for item in few], "hand-written single item")
    wrong: dict[str, str] = {}
    for name, applier in appliers.items():
        try:
            for workers in sorted({0, max(options.workers)}):
                got = list(
                    applier.eval_apply(items, batch_size=setup.batch_size, num_workers=workers)
                )
                assert_same(expected, got, f"eval_apply (workers {workers})")
            assert_same(expected[:16], [applier.infer_apply(item) for item in few], "infer_apply")
        except Exception as exc:  # one wrong contender must not stop the others being measured
            wrong[name] = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
    return wrong


def eval_run(
    applier: Any,
    items: Sequence[Any],
    batch_size: int,
    workers: int,
    stats: dict[str, Any] | None = None,
    name: str = "",
    **options: Any,
) -> Run:
    """An eval_apply over ``items``; its run statistics (the executor's ``RunStats``) of the
    latest round go to ``stats[name]``."""

    def run() -> int:
        outputs = applier.eval_apply(items, batch_size=batch_size, num_workers=workers, **options)
        count = drain(outputs)
        if stats is not None and hasattr(outputs, "stats"):
            stats[name] = outputs.stats
        return count

    return run


def run_workload(workload: Workload, options: Options) -> dict[str, Any]:
    count = options.items or workload.items[options.size]
    items = workload.make_items(count, 0)
    model = workload.make_model().to(options.device)
    setup = handwritten.Setup(workload, model, items, options.device, options.batch_size)
    pipeline = workload.pipeline(model).pd_to(options.device)
    print(f"\n== {workload.name}: {workload.description}")
    print(
        f"   {count:,} items, batch size {options.batch_size}, device {options.device}, best of {options.repeat}"
    )
    with tempfile.TemporaryDirectory(prefix="padlc-bench-") as directory:
        loaded, skipped, build_s = built.build_all(
            pipeline, items[:8], options.backends, directory, options.device
        )
        for backend, reason in skipped.items():
            print(f"   skipped backend {backend}: {reason}")
        appliers = {"padlc": pipeline, **{f"built {name}": p for name, p in loaded.items()}}
        wrong = check(setup, appliers, options)
        for name, reason in wrong.items():
            print(f"   NOT TIMED, outputs differ from the hand-written loop: {name}: {reason}")
        if not wrong:
            print("   outputs checked: padlc and every built backend equal the hand-written loop")

        batches = handwritten.collated_batches(setup, FORWARD_BATCHES)
        outputs = handwritten.forward_outputs(setup, batches)
        runs_out = []
        for workers in options.workers:
            runs: dict[str, Run] = {
                "preprocess alone": handwritten.preprocess_alone(setup, workers),
                "forward alone": handwritten.forward_alone(setup, batches),
                "postprocess alone": handwritten.postprocess_alone(setup, outputs),
                "hand-written loop": lambda w=workers: handwritten.loop(setup, w, _discard),
            }
            if workload.padl_style:
                runs["PADL-style post loop"] = lambda w=workers: handwritten.padl_style_loop(
                    setup, w, _discard
                )
            stats: dict[str, Any] = {}
            for name, applier in appliers.items():
                if name in wrong:
                    continue
                variants: dict[str, dict[str, int]] = {f"{name} eval_apply": {}}
                for threads in options.post_threads:
                    variants[f"{name} eval_apply (post threads {threads})"] = {
                        "post_threads": threads
                    }
                for post_workers in options.post_workers:
                    variants[f"{name} eval_apply (post workers {post_workers})"] = {
                        "post_workers": post_workers
                    }
                for row, extra in variants.items():
                    runs[row] = eval_run(
                        applier, items, options.batch_size, workers, stats, row, **extra
                    )
            rates = best_rates(runs, options.repeat, options.device)
            run = summarise(rates, workers, stats)
            runs_out.append(run)
            print(f"\n   workers {workers}\n" + _indent(report.throughput_table(run)))

        calls: dict[str, Callable[[Any], Any]] = {
            "hand-written single item": handwritten.single(setup),
        }
        for name, applier in appliers.items():
            if name not in wrong:
                calls[f"{name} infer_apply"] = applier.infer_apply
        measured = latencies(calls, items, options.latency_calls, options.device)
        hand = measured["hand-written single item"].p50_us
        latency = {
            name: {**value.as_dict(), "p50_vs_hand": value.p50_us / hand}
            for name, value in measured.items()
        }
        print(
            f"\n   latency ({options.latency_calls} interleaved calls each)\n"
            + _indent(report.latency_table(latency))
        )
    return {
        "description": workload.description,
        "items": count,
        "batch_size": options.batch_size,
        "built_backends": sorted(loaded),
        "build_seconds": build_s,
        "skipped_backends": skipped,
        "outputs_differ": wrong,
        "runs": runs_out,
        "latency": latency,
    }


def summarise(
    rates: dict[str, float], workers: int, stats: dict[str, Any] | None = None
) -> dict[str, Any]:
    limit = min(rates[stage] for stage in STAGES)
    hand = rates["hand-written loop"]
    throughput: dict[str, Any] = {}
    for name, rate in rates.items():
        entry: dict[str, Any] = {"items_per_s": rate}
        if name not in STAGES:
            entry.update(vs_hand=rate / hand, vs_limit=rate / limit)
        run_stats = (stats or {}).get(name)
        if run_stats is not None and run_stats.seconds:
            # Shares of the main thread's time in the latest round (the executor's RunStats).
            entry["main_thread"] = {
                "input": run_stats.input_seconds / run_stats.seconds,
                "forward": run_stats.forward_seconds / run_stats.seconds,
                "post": run_stats.post_seconds / run_stats.seconds,
            }
            entry["start_seconds"] = run_stats.start_seconds
        throughput[name] = entry
    return {"workers": workers, "limit_items_per_s": limit, "throughput": throughput}


def _discard(_: Any) -> None:
    pass


def _indent(text: str) -> str:
    return "\n".join("   " + line for line in text.splitlines())


def environment(argv: Sequence[str] | None, options: Options) -> dict[str, Any]:
    return {
        "command": "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv),
        "timestamp": datetime.datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "padlc": padlc.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        # Other work on the machine disturbs every figure; the load says how much there was.
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "device": str(options.device),
        "tf32": torch.backends.cudnn.allow_tf32,
        "device_name": torch.cuda.get_device_name(options.device)
        if options.device.type == "cuda"
        else platform.processor() or "cpu",
        "options": {
            "batch_size": options.batch_size,
            "workers": list(options.workers),
            "items": options.items,
            "size": options.size,
            "workloads": list(options.workloads),
            "backends": list(options.backends),
            "repeat": options.repeat,
            "latency_calls": options.latency_calls,
            "post_threads": list(options.post_threads),
            "post_workers": list(options.post_workers),
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(argv)
    results: dict[str, Any] = {
        "environment": environment(argv, options),
        "workloads": {},
        "memory": None,
    }
    env = results["environment"]
    print(
        f"padlc {env['padlc']}, torch {env['torch']}, Python {env['python']}, {env['cpu_count']} CPUs, {env['torch_threads']} torch threads, device {env['device_name']}"
    )
    if options.memory:
        workers = options.workers[-1]
        post_workers = options.post_workers[-1] if options.post_workers else 0
        print(
            f"\n== memory: eval_apply over {options.memory_items:,} tiny items (batch {options.batch_size}, workers {workers}, post workers {post_workers}), outputs streamed"
        )
        results["memory"] = memory.measure(
            options.memory_items,
            options.batch_size,
            workers,
            options.device,
            post_workers=post_workers,
        )
        m = results["memory"]
        print(
            f"   RSS start {m['start_mb']} MiB, peak {m['peak_mb']} MiB, end {m['end_mb']} MiB (growth {m['growth_mb']} MiB)"
        )
        print("   samples (items, MiB): " + ", ".join(f"{n:,}: {mb}" for n, mb in m["samples"]))
        if m["workers_peak_mb"] is not None:
            print(
                f"   worker processes together: first sample {m['workers_first_mb']} MiB, peak {m['workers_peak_mb']} MiB"
            )
    else:
        for name in options.workloads:
            results["workloads"][name] = run_workload(WORKLOADS[name], options)
    if hasattr(os, "getloadavg"):
        results["environment"]["load_average_at_end"] = list(os.getloadavg())
        print(
            f"\nload average at start {env['load_average_at_start']}, at end {env['load_average_at_end']}"
        )
    results["targets"] = report.targets(results)
    if results["targets"]:
        print("\n" + report.targets_table(results["targets"]))
    os.makedirs(os.path.dirname(os.path.abspath(options.json_path)), exist_ok=True)
    with open(options.json_path, "w") as file:
        json.dump(results, file, indent=2)
    print(f"\nwrote {options.json_path}")
    return 0
