"""Exceptions raised by the runtime.

``padlc`` re-exports :class:`ArtifactError` so that one ``except`` clause catches a bad artifact
whether it was found by the compiler's loader or by the runtime.
"""

from __future__ import annotations

__all__ = ["ArtifactError", "BackendUnavailableError", "ModeUnavailableError"]


class ArtifactError(Exception):
    """A ``.padl`` directory is missing, damaged, or in a format this runtime cannot read.

    The message names the artifact and the offending file, and says how to fix it.
    """

    def __init__(self, message: str, *, path: str | None = None, file: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.file = file


class BackendUnavailableError(ArtifactError):
    """No forward backend stored in the artifact can run here (wrong device, missing package)."""


class ModeUnavailableError(ArtifactError):
    """The artifact cannot apply this mode: its compiled forward was built for another mode's
    branch of a mode switch (the message names the switch and what to do)."""
