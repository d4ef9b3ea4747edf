"""``aoti``: an AOTInductor package (native code for the build machine's device architecture)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from padlc.lowering.export import export_program
from padlc.lowering.graph import LoweredForward, blame, lowering_error
from padlc.lowering.registry import Lowered, LoweringContext, host_arch, register

FILE = "forward/forward.aoti.pt2"


class AotiBackend:
    name = "aoti"

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

        program = export_program(forward, self.name)
        (root / FILE).parent.mkdir(parents=True, exist_ok=True)
        try:
            # Inductor touches torch.jit internally, which torch 2.13 reports as deprecated; that
            # is torch's business, not the user's, so it is not surfaced.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", FutureWarning)
                aoti_compile_and_package(program, package_path=str(root / FILE))
        except Exception as exc:
            raise lowering_error(
                forward.label,
                blame(exc, forward.calls),
                exc,
                "cannot be compiled by AOTInductor",
                self.name,
            ) from exc
        return Lowered(files=(FILE,), arch=host_arch(forward.device))


register(AotiBackend())
