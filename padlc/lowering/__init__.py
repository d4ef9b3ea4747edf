"""Lowering the forward stage: one fx GraphModule (:mod:`.graph`), then one backend per module.

>>> from padlc.lowering import BACKENDS, strategy
>>> sorted(BACKENDS)
['aoti', 'eager', 'export', 'onnx', 'torchscript']
>>> strategy("auto")
('export', 'onnx', 'torchscript', 'eager')
"""

from padlc.lowering import aoti, eager, export, onnx, torchscript  # noqa: F401  (registration)
from padlc.lowering.graph import LoweredForward, blame, build_graph, lowering_error
from padlc.lowering.registry import (
    AUTO_ORDER,
    BACKENDS,
    Backend,
    Lowered,
    LoweringContext,
    host_arch,
    register,
    strategy,
)

__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "Backend",
    "Lowered",
    "LoweredForward",
    "LoweringContext",
    "blame",
    "build_graph",
    "host_arch",
    "lowering_error",
    "register",
    "strategy",
]
