"""``ServeOptions``: everything ``padlc serve`` / ``python -m padl_runtime serve`` can be told."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ServeOptions"]


@dataclass(frozen=True)
class ServeOptions:
    """How to serve an artifact.

    ``max_batch`` items at most per forward; ``max_wait_ms`` the longest a batch is held open for
    items still arriving after its first; ``workers`` preprocess/postprocess processes (0: in the
    forward thread); ``max_queue`` items accepted and not yet batched before requests get 503;
    ``timeout`` seconds before a request gets 504; ``model_name`` the name in the Open Inference
    Protocol's paths (default: the artifact's directory name without ``.padl``).
    ``load_options`` go to :func:`padl_runtime.load` as keyword arguments (``device``,
    ``backend``, and any other option it takes).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 64
    max_wait_ms: float = 2.0
    workers: int = 0
    max_queue: int = 1024
    timeout: float = 30.0
    model_name: str | None = None
    log_level: str = "info"
    load_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checks = (
            ("max_batch", self.max_batch >= 1, "at least 1"),
            ("max_wait_ms", self.max_wait_ms >= 0, ">= 0"),
            ("workers", self.workers >= 0, ">= 0"),
            ("max_queue", self.max_queue >= 1, "at least 1"),
            ("timeout", self.timeout > 0, "> 0 seconds"),
            ("port", 0 <= self.port <= 65535, "a TCP port (0-65535)"),
        )
        for name, ok, what in checks:
            if not ok:
                raise ValueError(f"{name} must be {what}, got {getattr(self, name)!r}.")
