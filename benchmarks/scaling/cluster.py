"""A local Ray for the benchmark, started and stopped by it, in a temporary directory."""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def local_ray(num_cpus: int | None = None, env: Mapping[str, str] | None = None) -> Iterator[None]:
    """``ray.init`` of a new local instance (never one that happens to run), with a token of its
    own; every worker gets ``OMP_NUM_THREADS=1`` (what Ray gives a one-CPU actor anyway) and the
    repository on its path (for the hand-written deployment). ``env`` is set in this process's
    environment while Ray starts and runs, so that every Ray process reads it at its start, as
    they do on a cluster started with it (``RAY_SERVE_THROUGHPUT_OPTIMIZED=1 ray start``). Shut
    down and removed on exit."""
    import ray

    extra = dict(env or {})
    temp = tempfile.mkdtemp(prefix="padl-ray-bench-")
    keys = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", *extra)
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.pop("RAY_ADDRESS", None)
    os.environ.update(extra)
    if "RAY_AUTH_MODE" not in os.environ:
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)  # not written to ~/.ray
    try:
        ray.init(
            address="local",
            num_cpus=num_cpus or os.cpu_count(),
            include_dashboard=False,
            log_to_driver=False,
            _temp_dir=temp,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}},
        )
        ray.data.DataContext.get_current().enable_progress_bars = False
        yield
    finally:
        with contextlib.suppress(Exception):
            from ray import serve

            serve.shutdown()
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _run_on_ray(env: dict[str, str], run: Callable[..., Any], *args: Any) -> Any:
    with local_ray(env=env):
        return run(*args)


def on_own_ray(env: dict[str, str], run: Callable[..., Any], *args: Any) -> Any:
    """``run(*args)`` in a new process of its own, on a local Ray of its own started with
    ``env``: Ray reads its settings once per process, as every process of a cluster does."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(_run_on_ray, env, run, *args).result()
