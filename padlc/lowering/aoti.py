"""``aoti``: an AOTInductor package (native code for the build machine's device architecture)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from padlc.lowering.export import export_program, fused_note
from padlc.lowering.graph import LoweredForward, blame, lowering_error
from padlc.lowering.registry import Lowered, LoweringContext, host_arch, register

FILE = "forward/forward.aoti.pt2"


class AotiBackend:
    name = "aoti"
    needs_source = False

    def unavailable(self, device: str) -> str | None:
        if os.environ.get("CXX") is None and not any(
            os.access(os.path.join(p, c), os.X_OK)
            for p in os.environ.get("PATH", "").split(os.pathsep)
            for c in ("g++", "c++", "clang++")
        ):
            return "AOTInductor needs a C++ compiler on PATH"
        return None

    def lower(self, forward: LoweredForward, root: Path, context: LoweringContext) -> Lowered:
        from torch._inductor import aoti_compile_and_package

        program = _tensors_on(export_program(forward, self.name), torch.device(forward.device))
        (root / FILE).parent.mkdir(parents=True, exist_ok=True)
        try:
            # Inductor touches torch.jit internally, which torch 2.13 reports as deprecated, and
            # reports its own choices as UserWarnings (on CUDA: TF32 matmuls not enabled, "online
            # softmax disabled"). Only torch's code runs here (the user's ran at export), so none
            # of these is the user's business, and none may fail a build run with -W error.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", UserWarning)
                aoti_compile_and_package(program, package_path=str(root / FILE))
        except Exception as exc:
            raise lowering_error(
                forward.label,
                blame(exc, forward.calls),
                exc,
                "cannot be compiled by AOTInductor",
                self.name,
            ) from exc
        return Lowered(files=(FILE,), arch=host_arch(forward.device), note=fused_note(program))


register(AotiBackend())


def _tensors_on(
    program: torch.export.ExportedProgram, device: torch.device
) -> torch.export.ExportedProgram:
    """Every parameter, buffer and lifted constant of ``program`` on ``device``.

    A forward built for CUDA can still hold CPU tensors (a constant a function created on the CPU,
    a scalar tensor), which eager PyTorch accepts. An AOTInductor package for CUDA loads its
    constants as device memory, and a CPU one crashes the loading process (pytorch/pytorch#172739).
    The values are unchanged, only where they live."""
    if device.type == "cpu":
        return program
    # In place: the ExportedProgram's dicts are its own (its setters refuse to replace them).
    for values in (program.state_dict, program.constants):
        for name, value in list(values.items()):
            if not isinstance(value, torch.Tensor) or value.device == device:
                continue
            moved = value.detach().to(device)
            if isinstance(value, torch.nn.Parameter):
                moved = torch.nn.Parameter(moved, requires_grad=value.requires_grad)
            values[name] = moved
    return program
