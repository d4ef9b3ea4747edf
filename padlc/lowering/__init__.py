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
    BackendName,
    Lowered,
    LoweringContext,
    choices,
    host_arch,
    register,
    requested_backends,
    strategy,
    unknown_backend,
)

__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "Backend",
    "BackendName",
    "Lowered",
    "LoweredForward",
    "LoweringContext",
    "blame",
    "build_graph",
    "choices",
    "host_arch",
    "lowering_error",
    "register",
    "requested_backends",
    "strategy",
    "unknown_backend",
]
