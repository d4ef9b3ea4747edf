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
    "TORCH_OUTPUT_NOTE",
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


#: How the note holding what torch printed while a backend lowered the forward begins.
TORCH_OUTPUT_NOTE = "torch's output while lowering"


class LoweringError(PadlcError):
    """A backend cannot compile the forward stage. The message names the transform, the line of
    its code that failed and what to do; ``torch_error`` is torch's own exception (with its
    traceback) and ``torch_output`` what torch printed meanwhile, for digging deeper."""

    torch_error: BaseException | None = None
    torch_output: str = ""

    def detached(self) -> LoweringError:
        """This error as :func:`padlc.build` raises it: torch's exception (the cause) and output
        (a note) kept as attributes, and left out of the printed traceback, which then starts at
        the user's call."""
        if self.__cause__ is not None:
            self.torch_error = self.__cause__
        notes = getattr(self, "__notes__", None)
        if notes:
            output = [n for n in notes if n.startswith(TORCH_OUTPUT_NOTE)]
            self.torch_output = "\n".join(output)
            kept = [n for n in notes if not n.startswith(TORCH_OUTPUT_NOTE)]
            if kept:
                self.__notes__ = kept
            else:
                del self.__notes__
        self.__cause__ = None
        self.__suppress_context__ = True
        return self.with_traceback(None)


class BuildError(PadlcError):
    """``padlc build`` could not produce a verified artifact."""
