"""Where a run of the executor spends its main thread's time (``BatchIterator.stats``).

Private to :mod:`padl_runtime.executor`, which re-exports :class:`RunStats`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["RunStats", "timed"]


@dataclass
class RunStats:
    """Where one run's main thread spent its time, updated as the run goes (``BatchIterator.stats``).

    ``seconds`` is the time inside the executor, not counting the caller's own time between
    outputs. ``input_seconds`` is the part spent getting the next batch: preprocessing and
    collating it inline, or waiting for the DataLoader workers, plus the copy to the device;
    ``forward_seconds`` the part in the forward call (on CUDA mostly launching its kernels);
    ``post_seconds`` the rest: postprocessing inline, or handing outputs to the post thread or
    workers and waiting for their results. The largest share names the stage to speed up (more
    ``num_workers``, a compiled forward, ``post_workers``).

    ``start_seconds``, apart from ``seconds``, is what starting the run's worker processes
    (DataLoader workers, post workers) took before the first batch was asked for: a cost every
    ``eval_apply`` with workers pays again, which weighs on short runs.
    """

    batches: int = 0
    items: int = 0
    seconds: float = 0.0
    input_seconds: float = 0.0
    forward_seconds: float = 0.0
    start_seconds: float = 0.0

    def add_input(self, seconds: float, _batch: Any) -> None:
        self.input_seconds += seconds

    def add_outputs(self, seconds: float, outputs: list[Any] | None) -> None:
        self.seconds += seconds
        if outputs is not None:
            self.batches += 1
            self.items += len(outputs)

    @property
    def post_seconds(self) -> float:
        return max(0.0, self.seconds - self.input_seconds - self.forward_seconds)

    def __str__(self) -> str:
        if not self.seconds:
            return "no batches yet"
        shares = ", ".join(
            f"{name} {part / self.seconds:.0%}"
            for name, part in (
                ("input", self.input_seconds),
                ("forward", self.forward_seconds),
                ("post", self.post_seconds),
            )
        )
        started = (
            f"; worker processes started in {self.start_seconds * 1e3:.0f} ms"
            if self.start_seconds
            else ""
        )
        return (
            f"{self.batches:,} batches, {self.items:,} outputs in {self.seconds:.2f} s "
            f"({self.items / self.seconds:,.0f}/s); main thread: {shares}{started}"
        )


def timed(values: Iterator[Any], record: Callable[[float, Any], None]) -> Iterator[Any]:
    """``values``, passing the time spent getting each one (and the value, ``None`` at the end)
    to ``record``; the caller's time between values is not counted."""
    clock = time.perf_counter
    while True:
        started = clock()
        entry = next(values, None)
        record(clock() - started, entry)
        if entry is None:
            return
        yield entry
