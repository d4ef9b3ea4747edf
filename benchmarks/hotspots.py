"""``python -m benchmarks.hotspots``: where the main process spends its time in one workload's loops.

On a GPU machine the main process, not the GPU, bounds ``eval_apply`` (it receives batches, launches
the forward and postprocesses every item, all under the one GIL). This profiles that process with
cProfile for the hand-written loop, padlc's ``eval_apply`` and, with ``--backend``, a built
artifact's, each with the post stage inline (``post_threads=0``) so all of it is in the profile, and
prints each one's wall time and top functions by own time.

    python -m benchmarks.hotspots --workload text --device cuda --workers 8 --items 20000
    python -m benchmarks.hotspots --workload tiny --backend eager          # on a laptop CPU

Profiling slows Python code down unevenly: compare where time goes, not the items/s.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from benchmarks import handwritten
from benchmarks.measure import drain, synchronize
from benchmarks.suite import WORKLOADS


def profile(name: str, run: Callable[[], int], device: torch.device, top: int) -> str:
    """Run ``run`` once under cProfile; its wall time, items/s and top functions as text."""
    profiler = cProfile.Profile()
    synchronize(device)
    started = time.perf_counter()
    profiler.enable()
    count = run()
    synchronize(device)
    profiler.disable()
    seconds = time.perf_counter() - started
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats("tottime")
    stats.print_stats(top)
    body = out.getvalue().split("ncalls", 1)[-1]
    return f"== {name}: {count:,} items in {seconds:.2f} s ({count / seconds:,.0f} items/s)\n   ncalls{body}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hotspots", description=__doc__)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--backend", default=None, help="also profile this built backend")
    parser.add_argument("--top", type=int, default=15, help="functions listed per contender")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    workload = WORKLOADS[args.workload]
    items = workload.make_items(args.items, 0)
    model = workload.make_model().to(device)
    setup = handwritten.Setup(workload, model, items, device, args.batch_size)
    pipeline = workload.pipeline(model).pd_to(device)
    options: dict[str, Any] = {
        "batch_size": args.batch_size,
        "num_workers": args.workers,
        "post_threads": 0,
    }
    stats: dict[str, Any] = {}

    def applied(name: str, applier: Any) -> Callable[[], int]:
        def run() -> int:
            outputs = applier.eval_apply(items, **options)
            count = drain(outputs)
            stats[name] = outputs.stats  # the executor's own account of its main thread
            return count

        return run

    runs: dict[str, Callable[[], int]] = {
        "hand-written loop": lambda: handwritten.loop(setup, args.workers, lambda _: None),
        "padlc eval_apply": applied("padlc eval_apply", pipeline),
    }
    with tempfile.TemporaryDirectory(prefix="padlc-profile-") as directory:
        if args.backend:
            import padl_runtime
            import padlc

            path = f"{directory}/{args.backend}.padl"
            padlc.build(pipeline, path, inputs=items[:8], backend=args.backend, device=str(device))
            built = padl_runtime.load(path, device=str(device), backend=args.backend)
            name = f"built {args.backend} eval_apply"
            runs[name] = applied(name, built)
        print(f"{workload.name}: {args.items:,} items, batch {args.batch_size}, "
              f"workers {args.workers}, device {device}, post stage inline")  # fmt: skip
        for name, run in runs.items():
            run()  # warm-up: worker start, allocator, kernels
            print("\n" + profile(name, run, device, args.top))
            if name in stats:
                print(f"   executor stats (profiled round): {stats[name]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
