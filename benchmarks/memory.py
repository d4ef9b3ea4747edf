"""``--memory``: resident memory of ``eval_apply`` streaming many items of the tiny workload.

The outputs are consumed and dropped as they come; if the executor accumulated anything per item
the resident set would grow with the item count. The main process is sampled (workers, if
any, hold one batch at a time and exit at the end); their resident memory together is sampled too,
first sample against peak.
"""

from __future__ import annotations

import gc
from typing import Any

import torch

from benchmarks import tiny
from benchmarks.measure import children_rss_mb, rss_mb


def measure(
    items: int,
    batch_size: int,
    workers: int,
    device: torch.device,
    every: int = 1000,
    post_workers: int = 0,
) -> dict[str, Any]:
    workload = tiny.WORKLOAD
    pipeline = workload.pipeline(workload.make_model().to(device)).pd_to(device)
    inputs = workload.make_items(items, 1)
    gc.collect()
    start = rss_mb()
    peak = start
    samples = [(0, round(start, 1))]
    workers_first = workers_peak = None
    count = 0
    outputs = pipeline.eval_apply(
        inputs, batch_size=batch_size, num_workers=workers, post_workers=post_workers
    )
    for _ in outputs:
        count += 1
        if count % every == 0:
            now = rss_mb()
            peak = max(peak, now)
            if workers or post_workers:
                children = children_rss_mb()
                workers_first = children if workers_first is None else workers_first
                workers_peak = max(workers_peak or 0.0, children)
            if count % (items // 10 or 1) == 0:
                samples.append((count, round(now, 1)))
    end = rss_mb()
    peak = max(peak, end)
    return {
        "workload": workload.name,
        "items": count,
        "batch_size": batch_size,
        "workers": workers,
        "post_workers": post_workers,
        "start_mb": round(start, 1),
        "peak_mb": round(peak, 1),
        "end_mb": round(end, 1),
        "growth_mb": round(peak - start, 1),
        "samples": samples,
        # The worker processes together (DataLoader and post workers), first sample and peak.
        "workers_first_mb": None if workers_first is None else round(workers_first, 1),
        "workers_peak_mb": None if workers_peak is None else round(workers_peak, 1),
        "sampled_every_items": every,
    }
