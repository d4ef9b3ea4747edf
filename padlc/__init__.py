"""padlc: write a PyTorch pipeline once — preprocessing, network, postprocessing — apply it to one
item or many, save it with its code, and compile it for serving.

>>> import torch
>>> from padlc import transform, batch, unbatch, same
>>> @transform
... def to_tensor(x):
...     return torch.tensor(x, dtype=torch.float32)
>>> model = transform(torch.nn.Linear)(3, 2)
>>> pipeline = to_tensor >> batch >> model >> same.argmax(-1) >> unbatch >> same.item()
>>> pipeline.infer_apply([1.0, 2.0, 3.0]) in (0, 1)
True
"""

from padlc.artifact import load, save
from padlc.builder import BuildResult, build
from padlc.capture.markers import param, value
from padlc.capture.serializers import serializer
from padlc.errors import (
    ArtifactError,
    BuildError,
    LoweringError,
    ModeError,
    PadlcError,
    SaveError,
    StageError,
    UntrustedArtifactError,
    WrongDeviceError,
)
from padlc.language.apply import DEFAULT_BATCH_SIZE, Outputs
from padlc.language.atomic import transform
from padlc.language.base import Transform
from padlc.language.combinators import Compose, Map, Parallel, Pipeline, Rollout, group
from padlc.language.markers import Batchify, Identity, Unbatchify, batch, identity, unbatch
from padlc.language.modes import IfEval, IfInfer, IfInMode, IfTrain, Try
from padlc.language.same import same

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "ArtifactError",
    "Batchify",
    "BuildError",
    "BuildResult",
    "Compose",
    "Identity",
    "IfEval",
    "IfInMode",
    "IfInfer",
    "IfTrain",
    "LoweringError",
    "Map",
    "ModeError",
    "Outputs",
    "PadlcError",
    "Parallel",
    "Pipeline",
    "Rollout",
    "SaveError",
    "StageError",
    "Transform",
    "Try",
    "Unbatchify",
    "UntrustedArtifactError",
    "WrongDeviceError",
    "__version__",
    "batch",
    "build",
    "group",
    "identity",
    "load",
    "param",
    "same",
    "save",
    "serializer",
    "transform",
    "unbatch",
    "value",
]
