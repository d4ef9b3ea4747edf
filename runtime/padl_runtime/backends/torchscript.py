"""``torchscript``: a TorchScript module (``forward/forward.ts``) taking N tensors, returning a tuple."""

from __future__ import annotations

import io
import warnings
from typing import Any

import torch

from padl_runtime.artifact import Artifact
from padl_runtime.backends import LoadedForward, register
from padl_runtime.manifest import BackendEntry
from padl_runtime.trust import Executes


class TorchScriptLoader:
    name = "torchscript"
    executes: Executes = "nothing"

    def unavailable(self, entry: BackendEntry, device: str) -> str | None:
        return None

    def load(
        self, artifact: Artifact, entry: BackendEntry, device: str, package: Any
    ) -> LoadedForward:
        # torch 2.13 deprecates torch.jit; the artifact chose TorchScript at build time, where
        # the deprecation was reported once. Loading it is not the user's call to make again.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            data = artifact.read(entry.files[0], needed_by="the torchscript forward", keep=False)
            module = torch.jit.load(io.BytesIO(data), map_location=device)
        module.eval()
        return LoadedForward(module)


register(TorchScriptLoader())
