"""DataLoader worker processes that end with the process that started them.

Private to :mod:`padl_runtime.executor`. A DataLoader worker checks for its parent only while it
waits for work, so one busy in a preprocess step, or blocked on a full queue, outlives a parent
killed with SIGKILL (there is no chance to stop it). On Linux each worker asks the kernel to kill
it when its parent exits (``prctl(PR_SET_PDEATHSIG)``), and exits at once if the parent is already
gone. Elsewhere nothing is added (torch's own check while idle remains).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["DieWithParent"]

_PR_SET_PDEATHSIG = 1


class DieWithParent:
    """A DataLoader ``worker_init_fn`` that ties the worker's life to the process ``parent``,
    then runs the caller's own ``worker_init_fn`` (picklable: spawned workers receive it)."""

    __slots__ = ("parent", "then")

    def __init__(self, then: Callable[[int], Any] | None, parent: int) -> None:
        self.then = then
        self.parent = parent

    def __call__(self, worker_id: int) -> None:
        _die_with(self.parent)
        if self.then is not None:
            self.then(worker_id)


def _die_with(parent: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl here: torch's idle check remains
        return
    if os.getppid() != parent:  # the parent died before the request: it cannot be signalled
        os._exit(1)
