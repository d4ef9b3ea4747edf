"""``export``: ``torch.export`` with the batch axis dynamic, saved as ``forward/forward.pt2``."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from padlc.lowering.fastpath import fused_calls, fused_fastpaths
from padlc.lowering.graph import LoweredForward, blame, lowering_error
from padlc.lowering.registry import Lowered, LoweringContext, dynamic_batch, register
from padlc.lowering.weights import WeightIndex, write_map

FILE = "forward/forward.pt2"
MAP_FILE = "forward/forward.pt2.weights.json"


def export_program(forward: LoweredForward, backend: str) -> torch.export.ExportedProgram:
    try:
        with torch.no_grad(), fused_fastpaths(forward.module), warnings.catch_warnings():
            # torch's notes on how it traced (an LSTM's flat weights "assigned during export")
            # are not the user's business (the eager reference run showed the user's own
            # warnings), and must not fail a build run with -W error
            warnings.simplefilter("ignore", UserWarning)
            program = torch.export.export(
                forward.module,
                forward.example,
                dynamic_shapes=dynamic_batch(forward),
                strict=False,
            )
            return _without_vmap(program)
    except Exception as exc:
        culprit = blame(exc, forward.calls)
        raise lowering_error(
            forward.label, culprit, exc, "cannot be traced by torch.export", backend
        ) from exc


def _without_vmap(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """A moved function's ``torch.vmap`` leaves functorch calls in the exported graph
    (``_add_batch_dim``, ``lazy_load_decompositions``, ...), which some torch releases cannot
    serialise and every run would interpret. Decomposing to the ATen inference graph (no
    decompositions beyond that) replaces them with the plain batched operations."""
    if not any(
        node.op == "call_function"
        and getattr(node.target, "__module__", "").startswith("torch._functorch")
        for node in program.graph.nodes
    ):
        return program
    with warnings.catch_warnings():  # torch-internal deprecation notices (pytree, torch.jit)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return program.run_decompositions({})


def fused_note(program: torch.export.ExportedProgram) -> str:
    """The build note saying which layers run on PyTorch's fused inference kernels (see
    :mod:`padlc.lowering.fastpath`), or ``""``."""
    counts = fused_calls(program)
    if not counts:
        return ""
    layers = ", ".join(f"{count} {kind}" for kind, count in counts.items())
    return f"fused inference kernels kept, as in eager: {layers}"


class ExportBackend:
    name = "export"
    needs_source = False

    def unavailable(self, device: str) -> str | None:
        return None

    def lower(self, forward: LoweredForward, root: Path, context: LoweringContext) -> Lowered:
        program = export_program(forward, self.name)
        (root / FILE).parent.mkdir(parents=True, exist_ok=True)
        note = fused_note(program)
        index = context.shared_weights()
        shared = _share_weights(program, index) if index is not None else {}
        with warnings.catch_warnings():
            # placeholders share no storage with a complete tensor: torch says so, harmlessly
            warnings.filterwarnings("ignore", "No complete tensor found", UserWarning)
            torch.export.save(program, str(root / FILE))
        if not shared or index is None:
            return Lowered(files=(FILE,), note=note)
        weights = write_map(root, MAP_FILE, index, shared)
        return Lowered(files=(FILE, MAP_FILE), note=note, weights=weights)


def _share_weights(program: torch.export.ExportedProgram, index: WeightIndex) -> dict[str, str]:
    """Replace every parameter and buffer of ``program`` found in the lineage's weights file by a
    placeholder of its shape and dtype (one element, broadcast: no bytes on disk); the names
    replaced -> their keys in the file. The runtime puts the stored tensors back."""
    shared: dict[str, str] = {}
    for name, tensor in list(program.state_dict.items()):
        found = index.find_tensor(tensor)
        if found is None:
            continue
        placeholder = torch.zeros((), dtype=tensor.dtype, device=tensor.device).expand(tensor.shape)
        # In place: the ExportedProgram's dict is its own (its setter refuses a new one).
        program.state_dict[name] = (
            torch.nn.Parameter(placeholder, requires_grad=False)
            if isinstance(tensor, torch.nn.Parameter)
            else placeholder
        )
        shared[name] = found.key
    return shared


register(ExportBackend())
