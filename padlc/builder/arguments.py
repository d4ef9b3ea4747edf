"""What ``padlc.build`` is given, checked: the pipeline, the device, the examples; and the
pipeline moved to the build's device for the duration of the build."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from padlc.builder.examples import short
from padlc.errors import BuildError
from padlc.language.base import Transform

__all__ = ["build_device", "check_pipeline", "example_list", "on_device"]


def check_pipeline(pipeline: Any) -> None:
    """A :class:`BuildError` saying how to make a pipeline when ``pipeline`` is not a transform."""
    if isinstance(pipeline, Transform):
        return
    example = "`transform(prepare) >> batch >> transform(layer) >> unbatch`"
    if isinstance(pipeline, torch.nn.Module):
        got = f"the torch module {short(pipeline)}"
        how = f"Wrap the layer with padlc.transform and mark the batch around it, e.g. {example}."
    elif callable(pipeline):
        got = f"the function {short(pipeline)}"
        how = "Wrap it with padlc.transform: `transform(function)`."
    else:
        got = f"{type(pipeline).__name__} {short(pipeline)}"
        how = f"Build one from transforms, e.g. {example}."
    raise BuildError(f"padlc.build needs a padlc pipeline (a Transform), got {got}. {how}")


def build_device(name: Any) -> str:
    """``name`` as a torch device string; a :class:`BuildError` when torch cannot parse it or the
    device is not available here."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise BuildError(
            f"Unknown device {name!r}: torch cannot parse it. Pass a torch device such as "
            "'cpu', 'cuda' or 'cuda:1' (--device)."
        ) from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            why = (
                f"this torch ({torch.__version__}) is built without CUDA"
                if torch.version.cuda is None
                else "no CUDA device is available"
            )
            raise BuildError(
                f"Cannot build on device {name!r}: {why}. Build on the CPU (device='cpu', "
                "--device cpu), or on a machine with a GPU and a CUDA build of torch."
            )
        if device.index is not None and device.index >= count:
            raise BuildError(
                f"Cannot build on device {name!r}: there are {count} CUDA device(s) here "
                f"(cuda:0 to cuda:{count - 1}). Pick one of them."
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise BuildError(
            f"Cannot build on device {name!r}: MPS is not available here. Build on the CPU "
            "(device='cpu', --device cpu)."
        )
    return str(device)


def example_list(inputs: Any) -> list[Any]:
    """``inputs`` as a list, or a :class:`BuildError` when it is not a collection of examples."""
    if not isinstance(inputs, str | bytes | Mapping):
        try:
            return list(inputs)
        except TypeError:
            pass
    raise BuildError(
        f"inputs must be a list of raw example items (what infer_apply takes), got "
        f"{type(inputs).__name__} {short(inputs)}. Pass two or more items, e.g. "
        "inputs=[item1, item2]."
    )


@contextlib.contextmanager
def on_device(pipeline: Transform, device: str) -> Iterator[None]:
    """``pipeline`` moved to ``device`` for the duration of the build (the reference outputs the
    artifact is verified against are computed there too), then put back where it was."""
    transforms = list(pipeline.pd_iter_transforms())
    devices = [t._pd_device for t in transforms]
    layers = [(layer, device_of(layer)) for layer in pipeline.pd_layers]
    if all(d == device for d in devices) and all(d in (None, device) for _, d in layers):
        yield
        return
    tags = [layer.__dict__.get("_pd_moved_to") for layer, _ in layers]  # see Transform.pd_to
    pipeline.pd_to(device)
    try:
        yield
    finally:
        for (layer, where), tag in zip(layers, tags, strict=True):
            if where is not None:
                layer.to(where)
            if tag is None:
                layer.__dict__.pop("_pd_moved_to", None)
            else:
                layer.__dict__["_pd_moved_to"] = tag
        for t, where in zip(transforms, devices, strict=True):
            t.__dict__["_pd_device"] = where


def device_of(layer: torch.nn.Module) -> str | None:
    for tensor in itertools.chain(layer.parameters(), layer.buffers()):
        return str(tensor.device)
    return None
