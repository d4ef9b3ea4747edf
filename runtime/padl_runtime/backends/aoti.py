"""``aoti``: an AOTInductor package: native code for one device architecture."""

from __future__ import annotations

import inspect
import platform
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from padl_runtime.artifact import Artifact
from padl_runtime.backends import LoadedForward, register
from padl_runtime.manifest import BackendEntry
from padl_runtime.trust import Executes

__all__ = ["device_arch"]


def _direct(runner: Any) -> Callable[..., tuple[torch.Tensor, ...]]:
    """The package's forward on flat tensors, returning a flat tuple.

    Calling the loaded model parses its input and output tree specs from JSON on every call, then
    flattens and rebuilds through them: on a small model, a good part of a one-item call
    (docs/performance.md). padlc's forwards take flat tensors and return a flat tuple; when the
    package's specs say exactly that, its loader runs them directly."""
    loader = getattr(runner, "loader", None)
    boxed = getattr(loader, "boxed_run", None)
    if boxed is None or not _flat_specs(loader):
        return lambda *tensors: tuple(runner(*tensors))
    return lambda *tensors: tuple(boxed(list(tensors)))


def _flat_specs(loader: Any) -> bool:
    """Whether the package takes ``(tensor, ...)`` positionally and returns a tuple of tensors."""
    try:
        from torch.utils import _pytree as pytree

        inputs, outputs = (pytree.treespec_loads(spec) for spec in loader.get_call_spec())
    except Exception:  # an older or newer package format: the model's own call is always right
        return False
    if inputs.type is not tuple or len(_children(inputs)) != 2:
        return False
    args, kwargs = _children(inputs)
    return (
        args.type is tuple
        and all(child.is_leaf() for child in _children(args))
        and kwargs.type is dict
        and not _children(kwargs)
        and outputs.type is tuple
        and all(child.is_leaf() for child in _children(outputs))
    )


def _children(spec: Any) -> list[Any]:
    """A tree spec's children (``children()`` in newer torch, ``children_specs`` in older)."""
    children = getattr(type(spec), "children", None)
    return list(spec.children() if callable(children) else spec.children_specs)


def device_arch(device: str) -> str:
    """``cpu-x86_64`` / ``cuda-sm90``: what native code must be built for to run on ``device``."""
    dev = torch.device(device)
    if dev.type == "cuda":
        major, minor = torch.cuda.get_device_capability(dev)
        return f"cuda-sm{major}{minor}"
    return f"{dev.type}-{platform.machine()}"


class AotiLoader:
    name = "aoti"
    executes: Executes = "native"

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

    def load(
        self, artifact: Artifact, entry: BackendEntry, device: str, package: Any
    ) -> LoadedForward:
        from torch._inductor import aoti_load_package

        # Native code: loaded only under established trust (executes = "native"), and from the
        # verified bytes, copied to a private file (torch opens packages by path).
        data = artifact.read(entry.files[0], needed_by="the aoti forward", keep=False)
        with tempfile.TemporaryDirectory(prefix="padl-aoti-") as scratch:
            package_file = Path(scratch) / "forward.aoti.pt2"
            package_file.write_bytes(data)
            runner = _load_package(aoti_load_package, str(package_file), device)
        return LoadedForward(_direct(runner), fixed_shapes=True)


def _load_package(aoti_load_package: Any, file: str, device: str) -> Any:
    with warnings.catch_warnings():  # torch-internal torch.jit deprecation notices
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        dev = torch.device(device)
        if dev.type != "cuda":
            return aoti_load_package(file)
        # The package's loader puts its constants in device memory: start CUDA on the device
        # first, and load there (not on whatever device is current).
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        torch.cuda.init()
        # torch < 2.6 has no device_index and loads on the current device.
        takes_index = "device_index" in inspect.signature(aoti_load_package).parameters
        options: dict[str, Any] = {"device_index": index} if takes_index else {}
        with torch.cuda.device(index):
            return aoti_load_package(file, **options)


register(AotiLoader())
