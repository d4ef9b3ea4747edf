"""PyTorch's fused inference kernels, kept in exported forwards.

In eval mode without gradients, eager ``nn.TransformerEncoderLayer`` runs as one fused ATen
kernel, ``aten._transformer_encoder_layer_fwd`` (the "BetterTransformer" fastpath). ``torch.export``
never takes that path: it traces with tensor subclasses, which the fastpath's own checks refuse,
so it records the reference path instead, about forty operators per layer. The exported forward
is then slower than the eager pipeline it replaces (the benchmark's text model on CPU: 396 µs a
batch exported against 256 µs eager) and its numbers differ from eager inference's in the last
bits.

:func:`fused_fastpaths` makes each layer that eager inference would run fused call the same
kernel, with the same arguments, while a forward is traced. Layers eager would not fuse (training
mode, ``batch_first=False``, an odd head count, hooks, ...) keep their own forward. The switch is
PyTorch's: ``torch.backends.mha.set_fastpath_enabled(False)`` turns the fastpath off in eager and
in padlc's exported forwards alike.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FUSED_OPERATORS", "fused_calls", "fused_fastpaths"]

#: The fused kernels this module keeps, as they appear in an exported graph.
FUSED_OPERATORS = {torch.ops.aten._transformer_encoder_layer_fwd.default: "TransformerEncoderLayer"}

_DEVICE_TYPES = ("cpu", "cuda", "xpu")


@contextlib.contextmanager
def fused_fastpaths(module: nn.Module) -> Iterator[None]:
    """While tracing ``module``, its ``nn.TransformerEncoderLayer`` submodules run fused where
    eager inference would; their forwards are restored afterwards, whatever happens."""
    patched = [
        layer
        for layer in module.modules()
        if isinstance(layer, nn.TransformerEncoderLayer)
        # A subclass with its own forward, or an instance that already has one, is left alone.
        and type(layer).forward is nn.TransformerEncoderLayer.forward
        and "forward" not in vars(layer)
    ]
    try:
        for layer in patched:
            layer.forward = types.MethodType(_encoder_layer_forward, layer)  # type: ignore[method-assign]
        yield
    finally:
        for layer in patched:
            vars(layer).pop("forward", None)


def fused_calls(program: torch.export.ExportedProgram) -> dict[str, int]:
    """How many calls of each fused kernel ``program`` makes, by layer kind."""
    counts: dict[str, int] = {}
    for node in program.graph.nodes:
        kind = FUSED_OPERATORS.get(node.target) if node.op == "call_function" else None
        if kind is not None:
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def _why_not_fused(layer: nn.TransformerEncoderLayer, src: torch.Tensor) -> str | None:
    """Eager's conditions for the fastpath (``TransformerEncoderLayer.forward`` as of torch 2.13),
    apart from the one export always fails: "no argument is a tensor subclass"."""
    attention = layer.self_attn
    parameters = [p for p in layer.parameters() if p is not None]
    reasons = {
        "the fastpath is disabled": not torch.backends.mha.get_fastpath_enabled(),
        "the input is not batched": src.dim() != 3,
        "the layer is training": layer.training,
        "batch_first is False": not attention.batch_first,
        "self_attn has no bias": attention.in_proj_bias is None,
        "q, k, v differ in size": not attention._qkv_same_embed_dim,
        "the activation is neither relu nor gelu": not layer.activation_relu_or_gelu,
        "norm1 and norm2 differ in eps": layer.norm1.eps != layer.norm2.eps,
        "the head count is odd": attention.num_heads % 2 == 1,
        "autocast is on": torch.is_autocast_enabled(),
        "hooks are attached": any(
            len(m._forward_hooks) + len(m._forward_pre_hooks) for m in layer.modules()
        ),
        "a tensor is on an unsupported device": any(
            t.device.type not in _DEVICE_TYPES for t in (src, *parameters)
        ),
        "gradients are needed": torch.is_grad_enabled()
        and any(t.requires_grad for t in (src, *parameters)),
    }
    return next((reason for reason, failed in reasons.items() if failed), None)


def _encoder_layer_forward(
    layer: nn.TransformerEncoderLayer,
    src: torch.Tensor,
    src_mask: torch.Tensor | None = None,
    src_key_padding_mask: torch.Tensor | None = None,
    is_causal: bool = False,
) -> Any:
    """``TransformerEncoderLayer.forward`` as eager inference runs it: the fused kernel when the
    fastpath's conditions hold (the masks merged as eager merges them), else the layer's own."""
    if _why_not_fused(layer, src) is not None:
        return nn.TransformerEncoderLayer.forward(
            layer, src, src_mask, src_key_padding_mask, is_causal=is_causal
        )
    src_key_padding_mask = F._canonical_mask(
        mask=src_key_padding_mask,
        mask_name="src_key_padding_mask",
        other_type=F._none_or_dtype(src_mask),
        other_name="src_mask",
        target_type=src.dtype,
    )
    src_mask = F._canonical_mask(
        mask=src_mask,
        mask_name="src_mask",
        other_type=None,
        other_name="",
        target_type=src.dtype,
        check_other=False,
    )
    attention = layer.self_attn
    merged_mask, mask_type = attention.merge_masks(src_mask, src_key_padding_mask, src)
    return torch._transformer_encoder_layer_fwd(
        src,
        attention.embed_dim,
        attention.num_heads,
        attention.in_proj_weight,
        attention.in_proj_bias,
        attention.out_proj.weight,
        attention.out_proj.bias,
        layer.activation_relu_or_gelu == 2,
        layer.norm_first,
        layer.norm1.eps,
        layer.norm1.weight,
        layer.norm1.bias,
        layer.norm2.weight,
        layer.norm2.bias,
        layer.linear1.weight,
        layer.linear1.bias,
        layer.linear2.weight,
        layer.linear2.bias,
        merged_mask,
        mask_type,
    )
