"""The padlc exception tree, in one place.

::

    PadlcError
    ├── StageError        (also ValueError)   invalid batch/unbatch structure
    ├── ModeError         (also RuntimeError) a staged pipeline called outside an apply method
    ├── WrongDeviceError  (also RuntimeError) a forward layer is not on the pipeline's device
    ├── SaveError                             something in a pipeline cannot be saved with its code
    ├── LoweringError                         the forward stage cannot be compiled by a backend
    └── BuildError                            `padlc build` failed (inputs, verification, target)

    ArtifactError  (from padl_runtime)       a .padl directory is missing, damaged or unreadable
    └── UntrustedArtifactError               loading would run code of an artifact not trusted

Messages say what happened, where (the transform and its source line) and how to fix it.
"""

from __future__ import annotations

from padl_runtime.errors import ArtifactError
from padl_runtime.trust import UntrustedArtifactError

__all__ = [
    "ArtifactError",
    "BuildError",
    "LoweringError",
    "ModeError",
    "PadlcError",
    "SaveError",
    "StageError",
    "UntrustedArtifactError",
    "WrongDeviceError",
]


class PadlcError(Exception):
    """Base class of the errors padlc raises about a pipeline."""


class StageError(PadlcError, ValueError):
    """The ``batch``/``unbatch`` markers of a pipeline do not split it into valid stages."""


class ModeError(PadlcError, RuntimeError):
    """A pipeline that needs an apply mode (``batch``, ``unbatch``, ``IfInMode``) was called directly."""


class WrongDeviceError(PadlcError, RuntimeError):
    """A layer of the forward stage is not on the device the pipeline applies on
    (:meth:`padlc.Transform.pd_forward_device_check`)."""


class SaveError(PadlcError):
    """A pipeline holds something that cannot be saved with its code."""


class LoweringError(PadlcError):
    """A backend cannot compile the forward stage."""


class BuildError(PadlcError):
    """``padlc build`` could not produce a verified artifact."""
