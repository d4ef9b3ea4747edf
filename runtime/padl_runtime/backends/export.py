"""``export``: a ``torch.export`` program (``.pt2``), loaded with ``torch.export.load``."""

from __future__ import annotations

import io
from typing import Any

import torch

from padl_runtime.artifact import Artifact
from padl_runtime.backends import LoadedForward, register
from padl_runtime.backends._pt2 import check_no_code
from padl_runtime.backends.shared import shared_tensors
from padl_runtime.manifest import BackendEntry
from padl_runtime.trust import Executes


class ExportLoader:
    name = "export"
    executes: Executes = "nothing"

    def unavailable(self, entry: BackendEntry, device: str) -> str | None:
        return None

    def load(
        self, artifact: Artifact, entry: BackendEntry, device: str, package: Any
    ) -> LoadedForward:
        data = artifact.read(entry.files[0], needed_by="the export forward", keep=False)
        check_no_code(data, artifact, entry.files[0])
        program = torch.export.load(io.BytesIO(data))
        if entry.weights:  # the lineage's tensors, in place of the placeholders saved
            for name, tensor in shared_tensors(artifact, entry.weights).items():
                saved = program.state_dict[name]
                # In place: the ExportedProgram's dict is its own (its setter refuses a new one).
                program.state_dict[name] = (
                    torch.nn.Parameter(tensor, requires_grad=False)
                    if isinstance(saved, torch.nn.Parameter)
                    else tensor
                )
        module = program.module(check_guards=False)
        if device != "cpu":
            module = module.to(device)
        # `module(...)` runs forward hooks that re-check every input against the exported
        # constraints, which costs more than a small forward itself; the graph's own forward is
        # called instead, and the runtime checks the shapes itself (fixed_shapes, a tuple
        # comparison per input: CompiledPipeline).
        return LoadedForward(_flat_attributes(_without_pytree(module)).forward, fixed_shapes=True)


def _without_pytree(module: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """The unlifted module's code flattens its inputs and rebuilds its outputs with pytree specs
    on every call (about 2 µs, a tenth of a small forward). padlc exports flat tensors in and a
    flat tuple out, so plain code does the same without that work."""
    codegen = getattr(torch.fx.graph, "CodeGen", None)
    graph = module.graph
    if codegen is None or not hasattr(graph, "_codegen"):
        return module
    spec = getattr(graph._codegen, "pytree_info", None)
    if spec is None or spec.out_spec is None or not _flat_tuple(spec.out_spec):
        return module
    graph._codegen = codegen()
    module.recompile()
    return module


def _flat_attributes(module: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """The unlifted module reads each parameter and buffer through its submodules on every call
    (``getattr(self.model.layers, "0").linear1.weight``), each step an ``nn.Module.__getattr__``
    in Python: on a small model, a good part of a one-item call (docs/performance.md). Each tensor
    the graph reads is bound once as a plain attribute of the module (the same tensor object,
    after any move to the device), read with one lookup."""
    graph = module.graph
    changed = False
    for index, node in enumerate(list(graph.nodes)):
        if node.op != "get_attr" or "." not in str(node.target):
            continue
        value = _attribute(module, str(node.target))
        if not isinstance(value, torch.Tensor):
            continue
        name = f"_padl_attr_{index}"
        module.__dict__[name] = value  # not nn.Module.__setattr__: no registration, a plain read
        node.target = name
        changed = True
    if changed:
        module.recompile()
    return module


def _attribute(module: torch.nn.Module, dotted: str) -> Any:
    value: Any = module
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _flat_tuple(spec: Any) -> bool:
    """Whether a pytree spec is a tuple of leaves (what padlc's lowering exports)."""
    leaves = getattr(spec, "num_leaves", None)
    return (
        getattr(spec, "type", None) is tuple
        and leaves is not None
        and getattr(spec, "num_children", None) == leaves
    )


register(ExportLoader())
