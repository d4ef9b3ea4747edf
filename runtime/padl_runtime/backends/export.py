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
        module = program.module()
        if device != "cpu":
            module = module.to(device)
        return LoadedForward(module)


register(ExportLoader())
