"""Running the app on uvicorn: load, listen, and on SIGTERM or Ctrl-C drain and exit 0.

On SIGTERM (what Kubernetes sends) or SIGINT the server stops accepting connections, reports
not ready (``GET /v2/health/ready`` is 503), finishes the requests in flight, stops its forward
thread and worker processes, and returns 0. uvicorn itself would re-raise the signal once it has
shut down, making the exit status 143 for a clean drain; :class:`_Server` keeps the status 0.
A second SIGINT stops at once.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import logging
import os
import signal
import threading
from collections.abc import Generator
from types import FrameType
from typing import Any

import uvicorn

from padl_runtime.load import load
from padl_runtime.pipeline import CompiledPipeline
from padl_runtime.serve.app import ServerState, create_app
from padl_runtime.serve.options import ServeOptions

__all__ = ["run_app", "serve"]

_log = logging.getLogger("padl_runtime.serve")


class _Server(uvicorn.Server):
    """uvicorn's server, draining on SIGTERM/SIGINT and returning instead of re-raising it."""

    def __init__(self, config: uvicorn.Config, state: ServerState) -> None:
        super().__init__(config)
        self._state = state

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                # Once draining, the process is on its way out: a second signal during the rest
                # of the shutdown (joining workers) must not kill it with status 143.
                signal.signal(sig, signal.SIG_IGN if self._state.draining else handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self._state.draining:
            _log.info(
                "Draining: finishing %d queued items, then exiting.", self._state.batcher.depth
            )
        self._state.draining = True
        super().handle_exit(sig, frame)


def _loop() -> str:
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def _http() -> str:
    return "httptools" if importlib.util.find_spec("httptools") is not None else "h11"


def run_app(pipeline: CompiledPipeline, options: ServeOptions) -> int:
    """Serve a loaded pipeline until SIGTERM or Ctrl-C; 0 after a clean drain."""
    app = create_app(pipeline, options)
    state: ServerState = app.state.server
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        loop=_loop(),
        http=_http(),
        lifespan="on",
        log_level=options.log_level,
        access_log=False,
        # requests still running when the drain has taken this long are cancelled
        timeout_graceful_shutdown=int(options.timeout) + 5,
        server_header=False,
    )
    server = _Server(config, state)
    # What is loaded now (torch, the artifact: hundreds of thousands of objects) lives as long as
    # the server: out of the cyclic garbage collector's sight, a full collection no longer walks
    # it, which otherwise stalls every request in flight for tens of milliseconds now and then.
    gc.collect()
    gc.freeze()
    server.run()
    # A failed startup (the port in use, a worker that did not load) leaves started unset.
    return 0 if server.started else 1


def serve(
    path: str | os.PathLike[str], options: ServeOptions | None = None, **load_options: Any
) -> int:
    """Load the artifact at ``path`` and serve it (see :class:`ServeOptions`); returns the exit
    status. ``load_options`` are added to ``options.load_options``.

    >>> serve("model.padl", ServeOptions(port=8080, max_batch=32))   # doctest: +SKIP
    """
    options = options or ServeOptions()
    pipeline = load(path, **{**options.load_options, **load_options})
    _log.info("Loaded %r", pipeline)
    return run_app(pipeline, options)
