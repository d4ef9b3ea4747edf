"""PyTorch's fused inference paths, kept in exported forwards.

In eval mode without gradients, eager ``nn.TransformerEncoderLayer`` runs as one fused ATen
kernel, ``aten._transformer_encoder_layer_fwd`` (the "BetterTransformer" fastpath). ``torch.export``
never takes that path: it traces with tensor subclasses, which the fastpath's own checks refuse,
so it records the reference path instead, about forty operators per layer. The exported forward
is then slower than the eager pipeline it replaces (the benchmark's text model on CPU, one item:
396 µs exported against 256 µs eager) and its numbers differ from eager inference's in the last
bits.

:func:`fused_fastpaths` makes each layer that eager inference would run fused call the same
kernel, with the same arguments, while a forward is traced. Layers eager would not fuse (training
mode, ``batch_first=False``, an odd head count, hooks, ...) keep their own forward.

The same fastpath has ``nn.TransformerEncoder`` pack a padded batch into a nested tensor and
unpack it with zeros at the padded positions. A trace cannot do that: left alone, the exported
encoder returns other values there than eager (a mean over the sequence then differs everywhere).
So the traced encoder sets those positions to zero, under eager's own condition.

The switch is PyTorch's: ``torch.backends.mha.set_fastpath_enabled(False)`` turns the fastpath off
in eager and in padlc's exported forwards alike.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FUSED_OPERATORS", "fused_calls", "fused_fastpaths"]

#: The fused kernels this module keeps, as they appear in an exported graph.
FUSED_OPERATORS = {torch.ops.aten._transformer_encoder_layer_fwd.default: "TransformerEncoderLayer"}

_DEVICE_TYPES = ("cpu", "cuda", "xpu")


@contextlib.contextmanager
def fused_fastpaths(module: nn.Module, *, kernels: bool = True) -> Iterator[None]:
    """While tracing ``module``, its ``nn.TransformerEncoderLayer`` submodules run fused where
    eager inference would (``kernels=False``: not for an exporter that has no such operator,
    ONNX), and its ``nn.TransformerEncoder`` submodules give padded positions the zeros eager's
    nested-tensor path gives them; their forwards are restored afterwards, whatever happens."""
    replacements: dict[type[nn.Module], Callable[..., Any]] = {
        nn.TransformerEncoder: _encoder_forward
    }
    if kernels:
        replacements[nn.TransformerEncoderLayer] = _encoder_layer_forward
    patched = [
        (submodule, replacements[kind])
        for submodule in module.modules()
        for kind in replacements
        if isinstance(submodule, kind)
        # A subclass with its own forward, or an instance that already has one, is left alone.
        and type(submodule).forward is kind.forward
        and "forward" not in vars(submodule)
    ]
    try:
        for submodule, forward in patched:
            submodule.forward = types.MethodType(forward, submodule)  # type: ignore[method-assign]
        yield
    finally:
        for submodule, _ in patched:
            vars(submodule).pop("forward", None)


def fused_calls(program: torch.export.ExportedProgram) -> dict[str, int]:
    """How many calls of each fused kernel ``program`` makes, by layer kind."""
    counts: dict[str, int] = {}
    for node in program.graph.nodes:
        kind = FUSED_OPERATORS.get(node.target) if node.op == "call_function" else None
        if kind is not None:
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def _inputs_allow_it(src: torch.Tensor, module: nn.Module) -> bool:
    """The fastpath's checks on the tensors themselves (as of torch 2.13), apart from the one a
    trace always fails, "no argument is a tensor subclass": a supported device, no gradient."""
    tensors = (src, *module.parameters())
    return src.device.type in _DEVICE_TYPES and not (
        torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    )


def _fuses(layer: nn.TransformerEncoderLayer, src: torch.Tensor) -> bool:
    """Whether eager inference runs ``layer`` on ``src`` fused (``TransformerEncoderLayer.forward``
    as of torch 2.13)."""
    attention = layer.self_attn
    return (
        torch.backends.mha.get_fastpath_enabled()
        and src.dim() == 3
        and not layer.training
        and attention.batch_first
        and attention.in_proj_bias is not None
        and attention._qkv_same_embed_dim
        and bool(layer.activation_relu_or_gelu)  # 1: relu, 2: gelu, 0: anything else
        and layer.norm1.eps == layer.norm2.eps
        and attention.num_heads % 2 == 0
        and not torch.is_autocast_enabled()
        and not any(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in layer.modules())
        and _inputs_allow_it(src, layer)
    )


def _padding_mask(
    padding: torch.Tensor | None, other: torch.Tensor | None, other_name: str, src: torch.Tensor
) -> torch.Tensor | None:
    """A key padding mask in the form eager's fastpath passes on (``F._canonical_mask``)."""
    return F._canonical_mask(
        mask=padding,
        mask_name="src_key_padding_mask",
        other_type=F._none_or_dtype(other),
        other_name=other_name,
        target_type=src.dtype,
    )


def _encoder_layer_forward(
    layer: nn.TransformerEncoderLayer,
    src: torch.Tensor,
    src_mask: torch.Tensor | None = None,
    src_key_padding_mask: torch.Tensor | None = None,
    is_causal: bool = False,
) -> Any:
    """``TransformerEncoderLayer.forward`` as eager inference runs it: the fused kernel when the
    fastpath's conditions hold (the masks merged as eager merges them), else the layer's own."""
    if not _fuses(layer, src):
        return nn.TransformerEncoderLayer.forward(
            layer, src, src_mask, src_key_padding_mask, is_causal=is_causal
        )
    src_key_padding_mask = _padding_mask(src_key_padding_mask, src_mask, "src_mask", src)
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


def _nests(
    encoder: nn.TransformerEncoder,
    src: torch.Tensor,
    mask: torch.Tensor | None,
    padding: torch.Tensor | None,
) -> bool:
    """Whether eager inference runs ``encoder`` on a nested tensor (``TransformerEncoder.forward``
    as of torch 2.13, apart from the tensor-subclass check and the data-dependent alignment
    check, which :func:`_encoder_forward` makes part of the graph)."""
    first = encoder.layers[0]
    return (
        torch.backends.mha.get_fastpath_enabled()
        and getattr(encoder, "use_nested_tensor", False)
        and not first.training
        and src.dim() == 3
        and padding is not None
        and not src.is_nested
        and mask is None
        and not torch.is_autocast_enabled()
        and _inputs_allow_it(src, first)
    )


def _encoder_forward(
    encoder: nn.TransformerEncoder,
    src: torch.Tensor,
    mask: torch.Tensor | None = None,
    src_key_padding_mask: torch.Tensor | None = None,
    is_causal: bool | None = None,
) -> Any:
    """``TransformerEncoder.forward`` with eager inference's outputs.

    Given a padding mask, eager inference packs the batch into a nested tensor (when the padding
    of the whole batch is left-aligned, or ``mask_check=False``) and unpacks it with zeros at the
    padded positions, before the final norm. A trace cannot take that path; the layers run on
    the dense batch with the padding mask instead, which gives the same values at the other
    positions, and the padded ones are set to zero here, under the same condition, computed in
    the graph. (``mask_check=False`` promises left-aligned padding: given other padding, eager
    packs the wrong positions, which this does not copy.)"""
    padding = _padding_mask(src_key_padding_mask, mask, "mask", src)
    if not _nests(encoder, src, mask, padding):
        return nn.TransformerEncoder.forward(encoder, src, mask, src_key_padding_mask, is_causal)
    assert padding is not None  # _nests checked it
    padded = padding != 0  # as eager: a position is kept where the canonical mask is 0
    output = src
    for layer in encoder.layers:
        # is_causal as eager passes it without a mask; the fused layer ignores it, as eager's does
        output = layer(
            output, src_mask=None, is_causal=is_causal is True, src_key_padding_mask=padding
        )
    zeroed = output.masked_fill(padded.unsqueeze(-1), 0.0)
    if getattr(encoder, "mask_check", True):
        kept = padded.logical_not()
        left_aligned = (kept[:, 1:] <= kept[:, :-1]).all()  # each row: kept, then padded
        output = torch.where(left_aligned, zeroed, output)
    else:
        output = zeroed
    if encoder.norm is not None:
        output = encoder.norm(output)
    return output
