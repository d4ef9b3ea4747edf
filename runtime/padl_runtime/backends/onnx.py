"""``onnx``: an ONNX model run with onnxruntime (CPU, or CUDA when its provider is installed)."""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from padl_runtime.artifact import Artifact
from padl_runtime.backends import LoadedForward, register
from padl_runtime.backends.shared import shared_tensors
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
        model = artifact.read(entry.files[0], needed_by="the onnx forward", keep=False)
        shared = []
        if entry.weights:  # initializers stored in the lineage's weights file (external data)
            tensors = shared_tensors(artifact, entry.weights)
            shared = [onnxruntime.OrtValue.ortvalue_from_numpy(t.numpy()) for t in tensors.values()]
            options.add_external_initializers(list(tensors), shared)
        session = onnxruntime.InferenceSession(model, sess_options=options, providers=providers)
        names = [i.name for i in session.get_inputs()]

        def run(*tensors: torch.Tensor, _keep: object = shared) -> tuple[torch.Tensor, ...]:
            # _keep: onnxruntime reads the shared initializers from these buffers
            feeds = {n: t.detach().cpu().numpy() for n, t in zip(names, tensors)}
            return tuple(torch.from_numpy(o).to(device) for o in session.run(None, feeds))

        return LoadedForward(run, fixed_shapes=True)


register(OnnxLoader())
