"""Backends compared on the build fixtures: build time, artifact size, load time, speed vs eager.

    python -m benchmarks.backends [--fixtures image,text] [--backends export,onnx] [--repeat 200]

For each fixture (tests/e2e/pipelines.py) and backend: `padlc build` time (with its verification),
artifact size, and in a fresh process: the runtime's load time (from after `import torch`),
`infer_apply` latency (median µs per item) and `eval_apply` throughput (items/s, batch 64, about 500 items, after a warm-up pass), next to
the eager padlc pipeline's. Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_CHILD = r"""
import json, sys, time
import torch
started = time.perf_counter()
import padl_runtime
pipeline = padl_runtime.load(sys.argv[1])
load = time.perf_counter() - started
sys.path[:0] = [sys.argv[4]]
from tests.e2e.pipelines import FIXTURES
fixture = next(f for f in FIXTURES if f.name == sys.argv[2])
repeat = int(sys.argv[3])
torch.set_num_threads(1)
from benchmarks.backends import speed
print(json.dumps({"load": load, **speed(pipeline, fixture.inputs, repeat)}))
"""


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def speed(pipeline: Any, inputs: Any, repeat: int) -> dict[str, float]:
    """``infer_apply`` median latency (µs) and ``eval_apply`` throughput (items/s, batch 64, best
    after a warm-up pass, three timed passes over the inputs repeated 200 times): the same
    measurement for a loaded artifact (in the child process) and for the eager pipeline."""
    items = list(inputs) * 200
    for x in inputs:
        pipeline.infer_apply(x)
    times = []
    for i in range(repeat):
        x = inputs[i % len(inputs)]
        t = time.perf_counter()
        pipeline.infer_apply(x)
        times.append(time.perf_counter() - t)
    for _ in pipeline.eval_apply(items, batch_size=64, flatten=True):  # warm-up
        pass
    t = time.perf_counter()
    for _ in range(3):
        for _ in pipeline.eval_apply(items, batch_size=64, flatten=True):
            pass
    rate = 3 * len(items) / (time.perf_counter() - t)
    return {"infer_us": statistics.median(times) * 1e6, "eval_rate": rate}


def _hand_written_tiny(repeat: int) -> float:
    """The hand-written single-item path for the tiny `no_postprocess` fixture."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2).eval()
    xs = ([0.5, -1.0, 2.0, 0.0], [1.0, 1.0, -3.0, 0.25], [0.0, 0.1, 0.2, 0.3])
    times = []
    with torch.no_grad():
        for i in range(repeat):
            t = time.perf_counter()
            model(torch.tensor(xs[i % 3], dtype=torch.float32).unsqueeze(0))[0].tanh()
            times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def main(argv: list[str] | None = None) -> None:
    import torch

    import padlc
    from tests.e2e.pipelines import FIXTURES

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--fixtures", default="", help="comma-separated fixture names (default: all)"
    )
    parser.add_argument("--backends", default="export,torchscript,onnx,eager")
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--json", default="", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    wanted = set(filter(None, args.fixtures.split(",")))
    fixtures = [f for f in FIXTURES if not wanted or f.name in wanted]
    repo = str(Path(__file__).resolve().parents[1])
    rows = []
    header = f"{'fixture':<15}{'backend':<12}{'build s':>8}{'size KiB':>9}{'load s':>8}{'infer µs':>10}{'vs eager':>9}{'eval it/s':>11}{'vs eager':>9}"
    print(f"torch {torch.__version__}, 1 thread, CPU")
    print(header)
    with tempfile.TemporaryDirectory() as scratch:
        for fixture in fixtures:
            eager = speed(fixture.make(), fixture.inputs, args.repeat)
            print(
                f"{fixture.name:<15}{'(padlc eager)':<12}{'':>8}{'':>9}{'':>8}{eager['infer_us']:>10.1f}{'1.00':>9}{eager['eval_rate']:>11.0f}{'1.00':>9}"
            )
            for backend in args.backends.split(","):
                target = Path(scratch, f"{fixture.name}-{backend}.padl")
                t = time.perf_counter()
                try:
                    padlc.build(fixture.make(), target, inputs=fixture.inputs, backend=backend)
                except padlc.PadlcError as exc:
                    print(
                        f"{fixture.name:<15}{backend:<12} build failed: {str(exc).splitlines()[0][:80]}"
                    )
                    continue
                build_s = time.perf_counter() - t
                out = subprocess.run(
                    [sys.executable, "-c", _CHILD, str(target), fixture.name, str(args.repeat), repo],
                    capture_output=True, text=True, check=False,
                )  # fmt: skip
                if out.returncode != 0:
                    print(
                        f"{fixture.name:<15}{backend:<12} run failed: {out.stderr.strip().splitlines()[-1][:80]}"
                    )
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                row = {"fixture": fixture.name, "backend": backend, "build_s": build_s, "size": _size(target), **r,
                       "eager_infer_us": eager["infer_us"], "eager_eval_rate": eager["eval_rate"]}  # fmt: skip
                rows.append(row)
                print(
                    f"{fixture.name:<15}{backend:<12}{build_s:>8.1f}{row['size'] / 1024:>9.1f}{r['load']:>8.2f}"
                    f"{r['infer_us']:>10.1f}{eager['infer_us'] / r['infer_us']:>8.2f}x"
                    f"{r['eval_rate']:>11.0f}{r['eval_rate'] / eager['eval_rate']:>8.2f}x",
                    flush=True,
                )
    if any(f.name == "no_postprocess" for f in fixtures):
        print(
            f"hand-written torch, no_postprocess single item: {_hand_written_tiny(args.repeat):.1f} µs"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
