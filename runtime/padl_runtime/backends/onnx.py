"""``onnx``: an ONNX model run with onnxruntime (CPU, or CUDA when its provider is installed)."""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from padl_runtime.artifact import Artifact
from padl_runtime.backends import LoadedForward, register
from padl_runtime.manifest import BackendEntry
from padl_runtime.trust import Executes


class OnnxLoader:
    name = "onnx"
    executes: Executes = "nothing"

    def unavailable(self, entry: BackendEntry, device: str) -> str | None:
        if importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime is not installed (pip install onnxruntime)"
        if torch.device(device).type == "cuda":
            import onnxruntime

            if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                return "onnxruntime has no CUDAExecutionProvider (pip install onnxruntime-gpu)"
        return None

    def load(
        self, artifact: Artifact, entry: BackendEntry, device: str, package: Any
    ) -> LoadedForward:
        import onnxruntime

        providers = ["CPUExecutionProvider"]
        if torch.device(device).type == "cuda":
            providers.insert(0, "CUDAExecutionProvider")
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        data = artifact.read(entry.files[0], needed_by="the onnx forward", keep=False)
        session = onnxruntime.InferenceSession(data, sess_options=options, providers=providers)
        names = [i.name for i in session.get_inputs()]

        def run(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
            feeds = {n: t.detach().cpu().numpy() for n, t in zip(names, tensors)}
            return tuple(torch.from_numpy(o).to(device) for o in session.run(None, feeds))

        return LoadedForward(run, fixed_shapes=True)


register(OnnxLoader())
