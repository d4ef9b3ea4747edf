"""What receiving one batch from a DataLoader worker costs the main process, by batch size: torch's
shared memory (a file descriptor per tensor, fetched and mapped by the receiver) against sending
the raw bytes (``padl_runtime._transport``). The executor sends batches up to
``BY_VALUE_BYTES`` by value; this is the measurement behind that threshold.

    .venv/bin/python -m benchmarks.transport            # about 30 s on 2 cores
    .venv/bin/python -m benchmarks.transport --batches 500 --workers 4

Main-thread CPU time (``time.thread_time``) is what bounds a GPU pipeline whose main process
receives batches, launches the forward and postprocesses; wall time per batch is printed too.
Both transports run alternately, round by round; each figure is the best of ``--repeat`` rounds.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from padl_runtime import _transport

SIZES_KIB = (16, 128, 256, 512, 1024, 3072)


class _Batches(Dataset[Any]):
    """``count`` batches of ``size`` bytes, built in the worker, sent one way or the other."""

    def __init__(self, count: int, size: int, by_value: bool) -> None:
        self.count, self.size, self.by_value = count, size, by_value

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Any:
        batch = (index, 256, torch.zeros(self.size, dtype=torch.uint8))
        return _transport.by_value(batch) if self.by_value else _transport.by_reference(batch)


def _per_batch(size: int, by_value: bool, batches: int, workers: int) -> tuple[float, float]:
    """(main-thread CPU µs, wall µs) per batch received, after the first."""
    loader = DataLoader(
        _Batches(batches, size, by_value),
        batch_size=None,
        num_workers=workers,
        prefetch_factor=4,
    )
    iterator = iter(loader)
    next(iterator)  # workers started and running
    wall, cpu = time.perf_counter(), time.thread_time()
    received = sum(1 for _ in iterator)
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    return cpu / received * 1e6, wall / received * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(
        f"torch {torch.__version__}, {args.workers} DataLoader workers, {args.batches} batches, "
        f"best of {args.repeat}; the executor sends up to {_transport.BY_VALUE_BYTES // 1024} KiB by value"
    )
    header = (
        f"{'batch':>9}  {'shared memory: cpu µs':>22}  {'by value: cpu µs':>17}  {'cpu ratio':>9}"
    )
    print(header + f"  {'wall µs (shared / by value)':>28}")
    for kib in SIZES_KIB:
        best: dict[bool, tuple[float, float]] = {}
        for _ in range(args.repeat):
            for by_value in (False, True):
                cpu, wall = _per_batch(kib * 1024, by_value, args.batches, args.workers)
                old = best.get(by_value)
                best[by_value] = (min(cpu, old[0]), min(wall, old[1])) if old else (cpu, wall)
        shared, value = best[False], best[True]
        print(
            f"{kib:>6} KiB  {shared[0]:>22.1f}  {value[0]:>17.1f}  {value[0] / shared[0]:>8.2f}×"
            f"  {shared[1]:>13.1f} / {value[1]:.1f}"
        )


if __name__ == "__main__":
    main()
