"""Measurement helpers: interleaved best-of-N throughput, latency percentiles, resident memory.

Timings on a shared machine are noisy, so things that are compared are measured side by side:
every round runs each contender once, in turn, and a contender's figure is its best round.
"""

from __future__ import annotations

import glob
import os
import re
import resource
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

#: A timed run: processes every item once and returns how many outputs it produced.
Run = Callable[[], int]


def synchronize(device: torch.device) -> None:
    """Wait for the device, so a timing includes the work queued on it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_rates(runs: dict[str, Run], repeat: int, device: torch.device) -> dict[str, float]:
    """Items/s of each run: ``repeat`` rounds, each round running every contender once in turn;
    the best round counts (the least disturbed by other work on the machine)."""
    best: dict[str, float] = {name: 0.0 for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            synchronize(device)
            started = time.perf_counter()
            count = run()
            synchronize(device)
            best[name] = max(best[name], count / (time.perf_counter() - started))
    return best


@dataclass(frozen=True)
class Latency:
    p50_us: float
    p99_us: float
    mean_us: float

    def as_dict(self) -> dict[str, float]:
        return {"p50_us": self.p50_us, "p99_us": self.p99_us, "mean_us": self.mean_us}


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def latencies(
    calls: dict[str, Callable[[Any], Any]],
    items: Sequence[Any],
    count: int,
    device: torch.device,
    warmup: int = 20,
) -> dict[str, Latency]:
    """Per-call latency of each single-item callable; the calls are interleaved (call k of every
    contender runs before call k+1 of any), so machine noise hits them all alike."""
    for call in calls.values():
        for i in range(warmup):
            call(items[i % len(items)])
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for i in range(count):
        item = items[i % len(items)]
        for name, call in calls.items():
            synchronize(device)
            started = time.perf_counter()
            call(item)
            synchronize(device)
            samples[name].append((time.perf_counter() - started) * 1e6)
    result = {}
    for name, values in samples.items():
        values.sort()
        result[name] = Latency(
            percentile(values, 0.50), percentile(values, 0.99), statistics.fmean(values)
        )
    return result


_VMRSS = re.compile(r"^VmRSS:\s+(\d+)\s+kB", re.MULTILINE)


def rss_mb() -> float:
    """This process's resident set size now, in MiB (Linux /proc; elsewhere the peak so far)."""
    try:
        with open("/proc/self/status") as status:
            match = _VMRSS.search(status.read())
        if match:
            return int(match.group(1)) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def children_rss_mb() -> float:
    """The summed resident set size of this process's live children (worker processes), in MiB;
    0 where /proc is missing."""
    total = 0.0
    for tasks in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
        try:
            with open(tasks) as handle:
                pids = handle.read().split()
        except OSError:
            continue
        for pid in pids:
            try:
                with open(f"/proc/{pid}/status") as status:
                    match = _VMRSS.search(status.read())
            except OSError:  # it has just exited
                continue
            if match:
                total += int(match.group(1)) / 1024
    return total


def drain(outputs: Iterable[Any]) -> int:
    """Consume a stream of outputs without keeping them; returns how many there were."""
    count = 0
    for _ in outputs:
        count += 1
    return count
