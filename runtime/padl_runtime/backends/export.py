"""``export``: a ``torch.export`` program (``.pt2``), loaded with ``torch.export.load``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from padl_runtime.backends import LoadedForward, register
from padl_runtime.manifest import BackendEntry


class ExportLoader:
    name = "export"

    def unavailable(self, entry: BackendEntry, device: str) -> str | None:
        return None

    def load(self, root: Path, entry: BackendEntry, device: str, package: Any) -> LoadedForward:
        program = torch.export.load(str(root / entry.files[0]))
        module = program.module(check_guards=False)
        if device != "cpu":
            module = module.to(device)
        # `module(...)` runs forward hooks that re-check every input against the exported
        # constraints, which costs more than a small forward itself; the runtime passes exactly
        # the flat tensors the program was exported with, so the graph's own forward is called.
        return LoadedForward(module.forward)


register(ExportLoader())
