"""Items/s of run_batches against a hand-written DataLoader loop, on the CPU.

The model is a tiny MLP (16 floats -> Linear 16->32 -> ReLU -> Linear 32->4 -> argmax), so the
figures measure the executor's overhead (indexing, collation, hand-offs, per-item post), not
the network. Both sides do the same work: index one row per item, stack 256 rows, forward, then
``.item()`` per item in the main process.

    .venv/bin/python benchmarks/executor_cpu.py            # about 30 s on 2 cores
    .venv/bin/python benchmarks/executor_cpu.py --items 20000 --repeats 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch
from torch.utils.data import DataLoader, Dataset

from padl_runtime.executor import run_batches

BATCH_SIZE = 256


class Rows(Dataset[torch.Tensor]):
    def __init__(self, data: torch.Tensor) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.data[i]


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


def to_int(out: torch.Tensor) -> int:
    return int(out.item())


def make_model() -> Callable[[torch.Tensor], torch.Tensor]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    net.eval()

    def forward(batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return net(batch).argmax(1)

    return forward


def hand_loop(data: torch.Tensor, forward: Callable, workers: int) -> int:
    loader = DataLoader(Rows(data), batch_size=BATCH_SIZE, num_workers=workers)
    count = 0
    for batch in loader:
        for row in forward(batch):
            to_int(row)
            count += 1
    return count


def executor(data: torch.Tensor, forward: Callable, workers: int, **options: object) -> int:
    options.setdefault("preprocess", identity)
    count = 0
    for _ in run_batches(
        data,
        forward=forward,
        postprocess=to_int,
        batch_size=BATCH_SIZE,
        num_workers=workers,
        **options,  # type: ignore[arg-type]
    ):
        count += 1
    return count


def measure(runs: dict[str, Callable[[], int]], repeats: int) -> dict[str, float]:
    """Median items/s of each run. The runs are interleaved, one of each per round, so that load
    from other processes on a shared machine hits all of them alike rather than one of them."""
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            count = run()
            rates[name].append(count / (time.perf_counter() - started))
    return {name: statistics.median(values) for name, values in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data = torch.randn(args.items, 16)
    forward = make_model()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads, "
        f"{args.items} items, batch size {BATCH_SIZE}, median of {args.repeats} interleaved rounds"
    )
    variants: dict[str, dict[str, object]] = {
        "run_batches (same work)": {},
        "run_batches, post_threads=1": {"post_threads": 1},
        "run_batches, tensor input, no pre": {"preprocess": None},
    }
    for workers in (0, 2):
        runs: dict[str, Callable[[], int]] = {
            "hand-written DataLoader loop": partial(hand_loop, data, forward, workers)
        }
        for name, options in variants.items():
            runs[name] = partial(executor, data, forward, workers, **options)
        rates = measure(runs, args.repeats)
        base = rates["hand-written DataLoader loop"]
        print(f"\nnum_workers={workers}")
        for name, rate in rates.items():
            print(f"  {name:<33} {rate:>10,.0f} items/s  ratio {rate / base:.2f}")


if __name__ == "__main__":
    main()
