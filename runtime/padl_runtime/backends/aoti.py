"""``aoti``: an AOTInductor package: native code for one device architecture."""

from __future__ import annotations

import inspect
import platform
import warnings
from pathlib import Path
from typing import Any

import torch

from padl_runtime.backends import LoadedForward, register
from padl_runtime.manifest import BackendEntry

__all__ = ["device_arch"]


def device_arch(device: str) -> str:
    """``cpu-x86_64`` / ``cuda-sm90``: what native code must be built for to run on ``device``."""
    dev = torch.device(device)
    if dev.type == "cuda":
        major, minor = torch.cuda.get_device_capability(dev)
        return f"cuda-sm{major}{minor}"
    return f"{dev.type}-{platform.machine()}"


class AotiLoader:
    name = "aoti"

    def unavailable(self, entry: BackendEntry, device: str) -> str | None:
        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            return "CUDA is not available"
        here = device_arch(device)
        if entry.arch != here:
            return (
                f"the AOTInductor package was compiled for {entry.arch}, this device is {here}; "
                "rebuild with `padlc build --backend aoti` on this machine"
            )
        return None

    def load(self, root: Path, entry: BackendEntry, device: str, package: Any) -> LoadedForward:
        from torch._inductor import aoti_load_package

        with warnings.catch_warnings():  # torch-internal torch.jit deprecation notices
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            dev = torch.device(device)
            if dev.type == "cuda":
                # The package's loader puts its constants in device memory: start CUDA on the
                # device first, and load there (not on whatever device is current).
                index = dev.index if dev.index is not None else torch.cuda.current_device()
                torch.cuda.init()
                # torch < 2.6 has no device_index and loads on the current device.
                takes_index = "device_index" in inspect.signature(aoti_load_package).parameters
                options: dict[str, Any] = {"device_index": index} if takes_index else {}
                with torch.cuda.device(index):
                    runner = aoti_load_package(str(root / entry.files[0]), **options)
            else:
                runner = aoti_load_package(str(root / entry.files[0]))
        return LoadedForward(lambda *tensors: tuple(runner(*tensors)))


register(AotiLoader())
