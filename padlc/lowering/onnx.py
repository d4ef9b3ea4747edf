"""``onnx``: ``torch.onnx.export(..., dynamo=True)`` with a dynamic batch axis; run by onnxruntime."""

from __future__ import annotations

import importlib.util
import logging
import warnings
from pathlib import Path

import torch

from padlc.lowering.fastpath import fused_fastpaths
from padlc.lowering.graph import LoweredForward, blame, lowering_error
from padlc.lowering.registry import Lowered, LoweringContext, dynamic_batch, register

FILE = "forward/forward.onnx"


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
            raise lowering_error(
                forward.label,
                blame(exc, forward.calls),
                exc,
                "cannot be exported to ONNX",
                self.name,
            ) from exc
        finally:
            logger.setLevel(level)
        return Lowered(files=(FILE,))


register(OnnxBackend())
