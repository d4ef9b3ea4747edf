"""The build's example inputs: the eager reference outputs, and the batch the forward is traced on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from padl_runtime.artifact import DirectoryFiles
from padl_runtime.collate import collate
from padl_runtime.package import ArtifactPackage
from padlc.errors import BuildError
from padlc.language.base import Transform

__all__ = ["batched_outputs", "example_batch", "example_outputs", "short"]


def example_outputs(pipeline: Transform, inputs: list[Any]) -> list[Any]:
    stages = pipeline._pd_stages()
    outputs = []
    for index, item in enumerate(inputs):
        try:
            outputs.append(pipeline.infer_apply(item))
        except Exception as exc:
            stage = "the pipeline"
            if stages.has_batch:
                from padlc.language.context import ApplyContext, applying

                try:
                    with applying(ApplyContext("infer", "cpu", True)), torch.no_grad():
                        stages.preprocess._pd_call(item)
                    stage = "the forward or postprocess"
                except Exception:
                    stage = "preprocessing"
            raise BuildError(
                f"Example input {index} ({short(item)}) fails in {stage}: "
                f"{type(exc).__name__}: {str(exc).rstrip('.')}. The inputs must be raw items the "
                "pipeline's infer_apply accepts; fix the input or the pipeline and build again."
            ) from exc
    return outputs


def batched_outputs(
    pipeline: Transform, inputs: list[Any], max_batch: int | None = None
) -> list[Any]:
    """The reference for the artifact's eval_apply: the eager eval_apply, per item, in batches of
    at most ``max_batch`` (as the artifact is verified). Mode switches take their eval branches
    here, as in the artifact's eval stages."""
    size = min(len(inputs), max_batch or len(inputs))
    try:
        return list(pipeline.eval_apply(inputs, batch_size=size, flatten=True))
    except Exception as exc:
        raise BuildError(
            f"The eager pipeline's eval_apply fails on the examples ({type(exc).__name__}: "
            f"{str(exc).rstrip('.')}); the build verifies the artifact's eval_apply against it. "
            "The inputs must be raw items the pipeline's eval_apply accepts too; fix the input "
            "or the pipeline and build again."
        ) from exc


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def example_batch(root: Path, inputs: list[Any], stage_module: str) -> Any:
    """Collate the generated preprocess's outputs for the examples (as the runtime will)."""
    # compiled from the files just written (never imported: no __pycache__ in the artifact)
    preprocess = ArtifactPackage(DirectoryFiles(root)).function(stage_module, "preprocess")
    items = []
    for index, item in enumerate(inputs):
        try:
            items.append(item if preprocess is None else preprocess(item))
        except Exception as exc:
            raise BuildError(
                f"Example input {index} ({short(item)}) fails in the generated preprocess "
                f"({type(exc).__name__}: {exc}), though the eager pipeline accepts it. This is "
                "a bug in padlc; please report it with the pipeline."
            ) from exc
    return collate(items)
