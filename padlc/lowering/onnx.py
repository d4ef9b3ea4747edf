"""``onnx``: ``torch.onnx.export(..., dynamo=True)`` with a dynamic batch axis; run by onnxruntime."""

from __future__ import annotations

import importlib.util
import logging
import re
import warnings
from pathlib import Path

import torch

from padlc.errors import LoweringError
from padlc.lowering.fastpath import fused_fastpaths
from padlc.lowering.graph import LoweredForward, blame, lowering_error
from padlc.lowering.registry import Lowered, LoweringContext, dynamic_batch, register

FILE = "forward/forward.onnx"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class OnnxBackend:
    name = "onnx"

    def unavailable(self, device: str) -> str | None:
        missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
        if missing:
            return f"{' and '.join(missing)} not installed (pip install 'padlc[onnx]')"
        return None

    def lower(self, forward: LoweredForward, root: Path, context: LoweringContext) -> Lowered:
        (root / FILE).parent.mkdir(parents=True, exist_ok=True)
        names = [n.name for n in forward.module.graph.nodes if n.op == "placeholder"]
        # torch.onnx reports progress and skipped torchvision ops through logging and warnings;
        # the build reports its own outcome, so both are kept quiet for the duration.
        logger = logging.getLogger("torch.onnx")
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            # ONNX has no fused transformer operator; the encoders' padding still follows eager.
            with (
                warnings.catch_warnings(),
                torch.no_grad(),
                fused_fastpaths(forward.module, kernels=False),
            ):
                warnings.simplefilter("ignore")
                program = torch.onnx.export(
                    forward.module,
                    forward.example,
                    dynamo=True,
                    input_names=names,
                    dynamic_shapes=dynamic_batch(forward),
                    verbose=False,
                )
                if program is None:  # only the legacy (dynamo=False) exporter returns None
                    raise RuntimeError("torch.onnx.export returned no program")
                program.save(str(root / FILE), external_data=False)
        except Exception as exc:
            raise _export_error(forward, exc, self.name) from exc
        finally:
            logger.setLevel(level)
        return Lowered(files=(FILE,))


def _export_error(forward: LoweredForward, exc: BaseException, backend: str) -> LoweringError:
    """The error naming the root cause: torch.onnx wraps it (a ``TorchExportError`` whose first
    line is only "Failed to export the model with torch.export. This is step 1/3 ... Next steps:",
    in terminal colours), so the message names the step and the error it wraps, without colours."""
    cause = _root_cause(exc)
    what = "cannot be exported to ONNX"
    if cause is not exc:
        step = _ANSI.sub("", str(exc)).strip().split(". ", 1)[0].rstrip(".")
        what += f" (torch.onnx: {step})"
    error = lowering_error(forward.label, blame(exc, forward.calls), cause, what, backend)
    return LoweringError(_ANSI.sub("", str(error)))


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception ``exc`` was raised from (or while handling)."""
    seen = {id(exc)}
    while True:
        inner = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        if inner is None or id(inner) in seen:
            return exc
        seen.add(id(inner))
        exc = inner


register(OnnxBackend())
