"""What the Ray driver decides before any actor loads the artifact: the path every node reads,
trust, and the load options the actors get."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from padl_runtime.load import establish_trust, load
from padl_runtime.manifest import read_manifest
from padl_runtime.pipeline import CompiledPipeline

__all__ = ["ArtifactRef", "require_ray"]


def require_ray(module: str) -> Any:
    """``import module`` (``ray.data``, ``ray.serve``), or an error saying how to install it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] not in ("ray", "pyarrow", "pandas"):
            raise
        raise ModuleNotFoundError(
            f"padl_runtime.ray needs {module} ({exc}). Install the ray extra: "
            "pip install 'padl-runtime[ray]' (or 'padlc[ray]').",
            name=exc.name,
        ) from exc


@dataclass(frozen=True)
class ArtifactRef:
    """An artifact as the actors load it: its absolute path, the SHA-256 of the manifest trusted
    on the driver, and the other load options (``device``, ``backend``). Small and picklable:
    Ray sends it to every actor, which loads the artifact itself (:meth:`load`)."""

    path: str
    manifest_sha256: str
    max_batch: int | None
    load_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def prepare(
        cls, path: str | os.PathLike[str], load_options: dict[str, Any], *, gpu: bool = False
    ) -> ArtifactRef:
        """Check the artifact and establish trust in it here, on the driver, where the user's
        trust store and keys are (``trust_code``, ``trusted_keys`` are used here and not sent).
        With ``gpu`` and no ``device`` given, the actors load it on ``cuda`` (their GPU)."""
        options = dict(load_options)
        unknown = set(options) - {"device", "backend", "trust_code", "trusted_keys"}
        if unknown:
            raise TypeError(
                f"Unknown load option(s) {', '.join(sorted(unknown))}: padl_runtime.load takes "
                "device, backend, trust_code and trusted_keys."
            )
        digest = establish_trust(
            path,
            backend=options.get("backend"),
            trust_code=bool(options.pop("trust_code", False)),
            trusted_keys=options.pop("trusted_keys", None),
        )
        forward = read_manifest(path).forward
        if gpu and options.get("device") is None:
            options["device"] = "cuda"
        return cls(
            str(Path(path).resolve()),
            digest,
            forward.max_batch if forward is not None else None,
            options,
        )

    def load(self) -> CompiledPipeline:
        """Load the artifact in this process (an actor): refused unless its manifest is the one
        the driver trusted."""
        return load(self.path, trusted_manifest=self.manifest_sha256, **self.load_options)

    def check_batch(self, batch_size: int, what: str) -> None:
        if batch_size < 1:
            raise ValueError(f"{what} must be at least 1, got {batch_size}.")
        if self.max_batch is not None and batch_size > self.max_batch:
            raise ValueError(
                f"{what}={batch_size} is larger than this artifact's forward accepts: it was "
                f"built with max_batch={self.max_batch}. Pass {what} <= {self.max_batch}, or "
                "rebuild with a larger --max-batch."
            )
