"""``eager``: the forward as generated Python calling the captured code, weights in safetensors."""

from __future__ import annotations

from typing import Any

from padl_runtime.artifact import Artifact
from padl_runtime.backends import LoadedForward, register
from padl_runtime.manifest import BackendEntry
from padl_runtime.trust import Executes


class EagerLoader:
    name = "eager"
    executes: Executes = "python"

    def unavailable(self, entry: BackendEntry, device: str) -> str | None:
        return None

    def load(
        self, artifact: Artifact, entry: BackendEntry, device: str, package: Any
    ) -> LoadedForward:
        module = package.module(entry.files[0])
        to = getattr(module, "to_device", None)
        if to is not None:
            to(device)
        return LoadedForward(module.forward, flat=False)


register(EagerLoader())
