"""padl_runtime: load and run ``.padl`` artifacts built by padlc, with torch and the standard library only.

>>> import padl_runtime
>>> pipeline = padl_runtime.load("model.padl")      # doctest: +SKIP
>>> pipeline.infer_apply(raw_item)                   # doctest: +SKIP

Loading runs an artifact's code only when you trust it (docs/security.md): you wrote it on this
machine, you pass ``trust_code=True``, or a key you trust signed it.

Serving it over HTTP: ``python -m padl_runtime serve model.padl`` (see :mod:`padl_runtime.serve`).
"""

from padl_runtime.errors import ArtifactError, BackendUnavailableError, ModeUnavailableError
from padl_runtime.failures import ItemError
from padl_runtime.load import load
from padl_runtime.manifest import FORMAT_VERSION, Manifest, read_manifest
from padl_runtime.pipeline import CompiledPipeline
from padl_runtime.trust import UntrustedArtifactError

__version__ = "0.1.0"

__all__ = [
    "FORMAT_VERSION",
    "ArtifactError",
    "BackendUnavailableError",
    "CompiledPipeline",
    "ItemError",
    "Manifest",
    "ModeUnavailableError",
    "UntrustedArtifactError",
    "__version__",
    "load",
    "read_manifest",
]
