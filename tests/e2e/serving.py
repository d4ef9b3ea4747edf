"""Running a server in a fresh process for the serving tests, and stopping it cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    process: subprocess.Popen[str]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 30) -> tuple[int, str]:
        """SIGTERM, then the exit status and what the server logged."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, log = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, log = self.process.communicate()
            raise AssertionError(f"the server did not stop within {timeout} s:\n{log}") from None
        return self.process.returncode, log


def start(
    artifact: Path,
    *options: str,
    command: Sequence[str] = (sys.executable, "-m", "padlc", "serve"),
    python: str | None = None,
    timeout: float = 120,
    env: dict[str, str] | None = None,
) -> Running:
    """Start ``command ARTIFACT --port P OPTIONS`` and wait until it answers."""
    port = free_port()
    argv = [*command, str(artifact), "--port", str(port), "--log-level", "warning", *options]
    if python is not None:
        argv[0] = python
    process = subprocess.Popen(
        argv,
        cwd=artifact.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )
    running = Running(process, port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"the server exited with {process.returncode}:\n{process.communicate()[0]}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{running.url}/v2/health/ready", timeout=1).status_code == 200:
                return running
        time.sleep(0.1)
    process.kill()
    raise AssertionError(
        f"the server did not answer within {timeout} s:\n{process.communicate()[0]}"
    )


@contextlib.contextmanager
def serving(artifact: Path, *options: str, **kwargs: object) -> Iterator[Running]:
    """A server for the block; afterwards it must have drained and exited 0."""
    running = start(artifact, *options, **kwargs)  # type: ignore[arg-type]
    try:
        yield running
    finally:
        code, log = running.stop()
        assert code == 0, log


def children(pid: int) -> list[int]:
    """The ids of the processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def all_gone(pids: list[int], within: float = 15.0) -> bool:
    """Whether every process in ``pids`` has ended within ``within`` seconds."""
    deadline = time.monotonic() + within
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
