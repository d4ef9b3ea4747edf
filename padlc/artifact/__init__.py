"""Writing and reading ``.padl`` directories: :class:`ArtifactWriter` (atomic), :func:`save`, :func:`load`."""

from padlc.artifact.saving import load, save
from padlc.artifact.writer import ArtifactWriter, artifact_path

__all__ = ["ArtifactWriter", "artifact_path", "load", "save"]
