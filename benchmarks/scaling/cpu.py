"""CPU time of every process on the machine, from /proc: where a run's time went."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

Snapshot = dict[int, tuple[float, str]]
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def snapshot() -> Snapshot:
    """``{pid: (user + system CPU seconds, command line)}``."""
    found: Snapshot = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found[int(entry.name)] = ((int(fields[11]) + int(fields[12])) / _TICK, command.strip())
    return found


def spent(before: Snapshot, after: Snapshot, group: Callable[[int, str], str]) -> dict[str, float]:
    """CPU seconds between two snapshots, summed by ``group(pid, command)``."""
    totals: dict[str, float] = {}
    for pid, (seconds, command) in after.items():
        start = before.get(pid, (0.0, ""))[0]
        if seconds > start:
            name = group(pid, command)
            totals[name] = totals.get(name, 0.0) + seconds - start
    return totals
