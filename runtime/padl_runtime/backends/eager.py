"""``eager``: the forward as generated Python calling the captured code, weights in safetensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from padl_runtime.backends import LoadedForward, register
from padl_runtime.manifest import BackendEntry


class EagerLoader:
    name = "eager"

    def unavailable(self, entry: BackendEntry, device: str) -> str | None:
        return None

    def load(self, root: Path, entry: BackendEntry, device: str, package: Any) -> LoadedForward:
        module = package.module(entry.files[0])
        to = getattr(module, "to_device", None)
        if to is not None:
            to(device)
        return LoadedForward(module.forward, flat=False)


register(EagerLoader())
