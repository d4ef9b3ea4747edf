"""``torchscript``: a TorchScript module (``forward/forward.ts``) taking N tensors, returning a tuple."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from padl_runtime.backends import LoadedForward, register
from padl_runtime.manifest import BackendEntry


class TorchScriptLoader:
    name = "torchscript"

    def unavailable(self, entry: BackendEntry, device: str) -> str | None:
        return None

    def load(self, root: Path, entry: BackendEntry, device: str, package: Any) -> LoadedForward:
        # torch 2.13 deprecates torch.jit; the artifact chose TorchScript at build time, where
        # the deprecation was reported once. Loading it is not the user's call to make again.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(root / entry.files[0]), map_location=device)
        module.eval()
        return LoadedForward(module)


register(TorchScriptLoader())
