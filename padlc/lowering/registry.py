"""The backend registry: one module per backend registers itself here; the build looks names up.

A backend writes the forward's files into the artifact directory and returns what the manifest
records. It never runs the artifact: verification is the build's job (in a fresh process).
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import torch

from padlc.errors import TORCH_OUTPUT_NOTE, BuildError
from padlc.lowering.graph import LoweredForward
from padlc.lowering.weights import WeightIndex

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendName",
    "Lowered",
    "LoweringContext",
    "choices",
    "quiet_torch_output",
    "register",
    "requested_backends",
    "strategy",
    "unknown_backend",
]


@dataclass(frozen=True, slots=True)
class Lowered:
    """What a backend wrote: files relative to the artifact root, the native arch, notes for the
    user, and ``weights``: the map file of the tensors it reads from the lineage's weights file
    (:mod:`padlc.lowering.weights`; "" when it holds all of its own)."""

    files: tuple[str, ...]
    arch: str | None = None
    note: str = ""
    weights: str = ""


@dataclass(frozen=True, slots=True)
class LoweringContext:
    """What a backend may need besides the graph: the eager backend writes generated Python;
    ``shared_weights`` indexes the lineage's weights file, which a compiled forward may read
    instead of holding a copy (``None``: the artifact has no lineage)."""

    write_eager_forward: Callable[[Path], tuple[str, ...]]
    shared_weights: Callable[[], WeightIndex | None] = lambda: None


class Backend(Protocol):
    name: str
    #: the backend runs the forward as captured Python source (so it cannot build a forward whose
    #: transforms exist only as objects: compiled-only)
    needs_source: bool

    def unavailable(self, device: str) -> str | None:
        """Why this backend cannot build here (``None``: it can)."""

    def lower(self, forward: LoweredForward, root: Path, context: LoweringContext) -> Lowered: ...


BACKENDS: dict[str, Backend] = {}
#: The names ``padlc.build(backend=...)`` takes (checked against the registry when it runs).
BackendName = Literal["auto", "export", "aoti", "torchscript", "onnx", "eager"]
#: What ``--backend auto`` tries: every compiled backend that lowers and verifies is timed, and
#: the fastest is kept (one earlier in this order unless a later one is clearly faster, see
#: padlc.builder.choose); ``eager`` only when none of them builds.
AUTO_ORDER = ("export", "onnx", "torchscript", "eager")


def register(backend: Backend) -> Backend:
    BACKENDS[backend.name] = backend
    return backend


def choices() -> tuple[str, ...]:
    """Every name ``backend=`` takes: ``auto`` and the registered backends."""
    return ("auto", *sorted(BACKENDS))


def unknown_backend(name: object) -> BuildError:
    """The error for a backend name that is not one: the closest name, and every choice."""
    close = difflib.get_close_matches(name, choices(), n=1) if isinstance(name, str) else []
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return BuildError(
        f"Unknown backend {name!r}.{hint} Choose one of {', '.join(choices())} "
        "(backend='export', --backend export), or a list of them (backend=['export', 'onnx'], "
        "--backend export,onnx)."
    )


def requested_backends(backend: object) -> tuple[str, ...]:
    """``backend=`` as a tuple of names, each a known one, else a :class:`BuildError`."""
    if isinstance(backend, str):
        names: tuple[object, ...] = (backend,)
    elif isinstance(backend, list | tuple):
        names = tuple(backend)
    else:
        raise BuildError(
            f"backend must be a backend's name or a list of names, got {backend!r} (a "
            f"{type(backend).__name__}). Choose from {', '.join(choices())}, e.g. "
            "backend='export' or backend=['export', 'onnx']."
        )
    if not names:
        raise BuildError("No backend requested: pass backend='auto', a name, or a list of names.")
    for name in names:
        if name not in choices():
            raise unknown_backend(name)
    return names  # type: ignore[return-value]


def strategy(name: str) -> tuple[str, ...]:
    """The backends to try for ``--backend name`` (``auto``: several, in order)."""
    if name == "auto":
        return AUTO_ORDER
    if name not in BACKENDS:
        raise unknown_backend(name)
    return (name,)


def dynamic_batch(forward: LoweredForward) -> tuple[dict[int, torch.export.Dim], ...]:
    """``dynamic_shapes`` declaring axis 0 of every input the (shared) batch dimension."""
    batch = torch.export.Dim("batch", min=1, max=forward.max_batch or 2**20)
    return tuple({0: batch} for _ in forward.example)


def host_arch(device: str) -> str:
    """The native-code architecture of ``device``, spelt as the runtime checks it."""
    from padl_runtime.backends.aoti import device_arch

    return device_arch(device)


@contextlib.contextmanager
def quiet_torch_output(backend: str, lines: int = 40) -> Iterator[None]:
    """What torch writes to stderr or logs to the console while ``backend`` lowers (a failed
    ``torch.export`` prints its partial graph, symbolic shapes warn about unbacked symbols) is kept
    out of the build's output; an exception leaving the block carries its last ``lines`` as a note.

    The output goes to a temporary file rather than a string buffer: torch may need a real file
    descriptor (a compiler subprocess writing to stderr)."""
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as into:
        handlers = {
            handler
            for name, logger in list(logging.Logger.manager.loggerDict.items())
            if (name == "torch" or name.startswith("torch.")) and isinstance(logger, logging.Logger)
            for handler in logger.handlers
            if isinstance(handler, logging.StreamHandler)
            and handler.stream in (sys.stderr, sys.__stderr__)
        }
        swapped = [(handler, handler.setStream(into)) for handler in handlers]
        try:
            with contextlib.redirect_stderr(into):
                yield
        except Exception as exc:
            into.flush()
            into.seek(0)
            tail = into.read().strip().splitlines()[-lines:]
            if tail and hasattr(exc, "add_note"):  # Python 3.11+
                exc.add_note(f"{TORCH_OUTPUT_NOTE} with {backend}:\n" + "\n".join(tail))
            raise
        finally:
            for handler, stream in swapped:
                if stream is not None:
                    handler.setStream(stream)
            # a handler torch created meanwhile took the redirected stderr: give it the real one
            for logger in list(logging.Logger.manager.loggerDict.values()):
                for handler in getattr(logger, "handlers", ()):
                    if isinstance(handler, logging.StreamHandler) and handler.stream is into:
                        handler.setStream(sys.stderr)
