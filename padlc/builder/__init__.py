"""``padlc build``: compile a pipeline into a verified ``.padl`` artifact (see :func:`build`)."""

from padlc.builder.core import BuildResult, build

__all__ = ["BuildResult", "build"]
