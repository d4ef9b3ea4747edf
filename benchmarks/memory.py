"""``--memory``: resident memory of ``eval_apply`` streaming many items of the tiny workload.

The outputs are consumed and dropped as they come; if the executor accumulated anything per item
the resident set would grow with the item count. Only the main process is sampled (workers, if
any, hold one batch at a time and exit at the end).
"""

from __future__ import annotations

import gc
from typing import Any

import torch

from benchmarks import tiny
from benchmarks.measure import rss_mb


def measure(
    items: int, batch_size: int, workers: int, device: torch.device, every: int = 1000
) -> dict[str, Any]:
    workload = tiny.WORKLOAD
    pipeline = workload.pipeline(workload.make_model().to(device)).pd_to(device)
    inputs = workload.make_items(items, 1)
    gc.collect()
    start = rss_mb()
    peak = start
    samples = [(0, round(start, 1))]
    count = 0
    for _ in pipeline.eval_apply(inputs, batch_size=batch_size, num_workers=workers):
        count += 1
        if count % every == 0:
            now = rss_mb()
            peak = max(peak, now)
            if count % (items // 10 or 1) == 0:
                samples.append((count, round(now, 1)))
    end = rss_mb()
    peak = max(peak, end)
    return {
        "workload": workload.name,
        "items": count,
        "batch_size": batch_size,
        "workers": workers,
        "start_mb": round(start, 1),
        "peak_mb": round(peak, 1),
        "end_mb": round(end, 1),
        "growth_mb": round(peak - start, 1),
        "samples": samples,
        "sampled_every_items": every,
    }
