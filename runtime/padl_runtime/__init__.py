"""padl_runtime: load and run ``.padl`` artifacts built by padlc, with torch and the standard library only.

>>> import padl_runtime
>>> pipeline = padl_runtime.load("model.padl")      # doctest: +SKIP
>>> pipeline.infer_apply(raw_item)                   # doctest: +SKIP
"""

from padl_runtime.errors import ArtifactError, BackendUnavailableError
from padl_runtime.load import load
from padl_runtime.manifest import FORMAT_VERSION, Manifest, read_manifest
from padl_runtime.pipeline import CompiledPipeline

__version__ = "0.1.0"

__all__ = [
    "FORMAT_VERSION",
    "ArtifactError",
    "BackendUnavailableError",
    "CompiledPipeline",
    "Manifest",
    "__version__",
    "load",
    "read_manifest",
]
