"""Built artifacts: ``padlc.build`` once per backend into a temporary directory, then
``padl_runtime.load``. A backend that cannot be built here is skipped with the reason."""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

import padlc

#: Every backend the suite knows, in table order. AOTInductor compiles C++ for about a minute, so
#: it runs only when asked for (``--aoti`` or ``--backends aoti``).
BACKENDS = ("eager", "export", "torchscript", "onnx", "aoti")
DEFAULT_BACKENDS = ("eager", "export", "torchscript", "onnx")


def _build_function() -> Callable[..., Any] | None:
    build = getattr(padlc, "build", None)
    return build if callable(build) else None


def unavailable(backend: str) -> str | None:
    """Why ``backend`` cannot be built in this environment, or None."""
    if _build_function() is None:
        return "padlc.build is not available in this checkout"
    if backend == "onnx" and importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed (pip install 'padlc[onnx]')"
    return None


def build_all(
    pipeline: padlc.Transform,
    samples: Sequence[Any],
    backends: Sequence[str],
    directory: str,
    device: torch.device,
) -> tuple[dict[str, Any], dict[str, str], dict[str, float]]:
    """Build and load each backend: (loaded pipelines, skipped backend → reason, build seconds)."""
    loaded: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    seconds: dict[str, float] = {}
    for backend in backends:
        reason = unavailable(backend)
        if reason is not None:
            skipped[backend] = reason
            continue
        path = os.path.join(directory, f"{backend}.padl")
        started = time.perf_counter()
        try:
            build = _build_function()
            assert build is not None  # checked by unavailable()
            build(pipeline, path, inputs=list(samples), backend=backend, device=str(device))
            import padl_runtime

            loaded[backend] = padl_runtime.load(path, device=str(device), backend=backend)
        except Exception as exc:  # report and go on: one backend failing must not stop the suite
            skipped[backend] = (
                f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            )
            continue
        seconds[backend] = time.perf_counter() - started
    return loaded, skipped, seconds
