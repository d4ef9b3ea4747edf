"""What a document's session script (tests/docs_blocks.py) calls for the blocks that are not
plain python: shell commands, servers, files the reader writes, excerpts of generated files.

The session runs in a scratch folder; ``PADL_DOCS_VENV`` names the fresh virtual environment of
``venv`` blocks (set when the document has some).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ["Session"]

_TAIL = 4000


def _code_of(line: str) -> str:
    """``line`` without a trailing ``  # comment`` and trailing blanks."""
    code, _, _ = line.partition("  # ")
    return code.rstrip() if code.strip() else line.rstrip()


class Session:
    def __init__(self) -> None:
        self.root = Path.cwd()
        self.servers: list[tuple[subprocess.Popen[str], str]] = []

    # -- environments -----------------------------------------------------------------------------
    def _environment(self, venv: bool) -> dict[str, str]:
        """The project's environment activated (its bin first on PATH), or the fresh one."""
        env = dict(os.environ)
        if venv:
            home = Path(os.environ["PADL_DOCS_VENV"])
            env.pop("PYTHONPATH", None)  # nothing of this checkout but what pip installs
        else:
            home = Path(sys.executable).parent.parent
        env["VIRTUAL_ENV"] = str(home)
        env["PATH"] = f"{home / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        return env

    # -- blocks -----------------------------------------------------------------------------------
    def shell(self, code: str, where: str, venv: bool = False) -> None:
        result = subprocess.run(
            ["bash", "-e", "-c", code],
            cwd=self.root,
            env=self._environment(venv),
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        print(f"---- {where}\n{result.stdout}", flush=True)
        if result.returncode != 0:
            raise AssertionError(
                f"the bash block at {where} failed (exit status {result.returncode}):\n{code}\n"
                f"stdout:\n{result.stdout[-_TAIL:]}\nstderr:\n{result.stderr[-_TAIL:]}"
            )

    def server(self, code: str, where: str, venv: bool = False, timeout: float = 180) -> None:
        """Start the block's command in the background and wait until it serves."""
        port = re.search(r"--port[ =](\d+)", code)
        if port is None:
            raise AssertionError(f"the server block at {where} names no --port")
        url = f"http://127.0.0.1:{port.group(1)}/v2/health/ready"
        if len([line for line in code.splitlines() if line.strip()]) != 1:
            raise AssertionError(f"a server block holds one command: {where}")
        process = subprocess.Popen(
            ["bash", "-c", f"exec {code.strip()}"],  # the server itself gets the SIGTERM
            cwd=self.root,
            env={**self._environment(venv), "OMP_NUM_THREADS": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: stopped whole by close()
        )
        self.servers.append((process, where))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(
                    f"the server of {where} exited with {process.returncode}:\n"
                    f"{process.communicate()[0][-_TAIL:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise AssertionError(f"the server of {where} did not answer {url} in {timeout:.0f} s")

    def write(self, path: str, code: str) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(code, encoding="utf-8")

    def shows(self, path: str, code: str, where: str) -> None:
        """Each line of the excerpt is a line of the file, in that order; ``...``, blank lines and
        comment lines of the excerpt stand for what it leaves out, and a trailing ``  # comment``
        (which names the reader's own file and line in generated code) is not compared."""
        have = [_code_of(line) for line in (self.root / path).read_text().splitlines()]
        position = 0
        for line in code.splitlines():
            wanted = _code_of(line)
            if wanted.strip() in ("...", "") or wanted.lstrip().startswith("#"):
                continue
            try:
                position = have.index(wanted, position) + 1
            except ValueError:
                raise AssertionError(
                    f"{where} shows {path}, which has no line {wanted!r} after line {position}:\n"
                    + "\n".join(have)
                ) from None

    def dockerfile(self, path: str, where: str, build: bool) -> None:
        """The sources its ``COPY`` lines name exist beside it; built with docker when ``build``."""
        folder = (self.root / path).parent
        for line in (self.root / path).read_text().splitlines():
            words = line.split()
            if words[:1] == ["COPY"]:
                for source in words[1:-1]:
                    if not (folder / source).exists():
                        raise AssertionError(f"{where}: COPY {source}: no such file beside {path}")
        if build:
            self.shell(f"docker build -f {path} {folder}", where)

    def close(self) -> None:
        """Stop the servers the document started: each must drain and exit 0 on SIGTERM."""
        failures = []
        for process, where in self.servers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                log, _ = process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                log, _ = process.communicate()
                failures.append(f"the server of {where} did not stop on SIGTERM:\n{log[-_TAIL:]}")
                continue
            if process.returncode != 0:
                failures.append(
                    f"the server of {where} exited with {process.returncode}:\n{log[-_TAIL:]}"
                )
        if failures:
            raise AssertionError("\n".join(failures))
