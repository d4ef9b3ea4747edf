"""The forward's flat calling convention: nested batches <-> a flat tuple of tensors.

A compiled forward takes N positional tensors and returns a tuple of tensors. The nesting of its
inputs and outputs (tuples, namedtuples, dicts, lists) is recorded in the manifest as a JSON tree
spec, and rebuilt here::

    {"t": "tensor"}
    {"t": "tuple" | "list", "items": [spec, ...]}
    {"t": "namedtuple", "fields": ["a", "b"], "items": [spec, ...]}
    {"t": "dict", "keys": ["a", "b"], "items": [spec, ...]}
    {"t": "none"}

>>> spec = spec_of({"ids": torch.zeros(2, 3), "mask": torch.ones(2, 3)})
>>> flat = flattener(spec)({"ids": torch.zeros(2, 3), "mask": torch.ones(2, 3)})
>>> len(flat), sorted(unflattener(spec)(flat))
(2, ['ids', 'mask'])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from padl_runtime.outputs import output_tuple

__all__ = ["count", "flattener", "spec_of", "unflattener"]

Spec = dict[str, Any]


def spec_of(value: Any, where: str = "value") -> Spec:
    """The tree spec of a nested value whose leaves are tensors; ``TypeError`` names a bad leaf."""
    if isinstance(value, torch.Tensor):
        return {"t": "tensor"}
    if value is None:
        return {"t": "none"}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return {
            "t": "namedtuple",
            "fields": list(value._fields),
            "items": [spec_of(v, f"{where}.{f}") for f, v in zip(value._fields, value)],
        }
    if isinstance(value, tuple | list):
        return {
            "t": "tuple" if isinstance(value, tuple) else "list",
            "items": [spec_of(v, f"{where}[{i}]") for i, v in enumerate(value)],
        }
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {
            "t": "dict",
            "keys": list(value),
            "items": [spec_of(v, f"{where}[{k!r}]") for k, v in value.items()],
        }
    raise TypeError(f"{where} is a {type(value).__name__}, not a tensor")


def count(spec: Spec) -> int:
    """The number of tensors in a value of this spec."""
    if spec["t"] == "tensor":
        return 1
    return sum(count(s) for s in spec.get("items", ()))


def flattener(spec: Spec) -> Callable[[Any], tuple[torch.Tensor, ...]]:
    """A function turning a value of ``spec`` into its tensors, in order (built once, called often)."""
    if spec["t"] == "tensor":
        return lambda value: (value,)
    if spec["t"] == "none":
        return lambda value: ()
    parts = [flattener(s) for s in spec["items"]]
    if spec["t"] == "dict":
        keys = spec["keys"]

        def flatten_dict(value: Any) -> tuple[torch.Tensor, ...]:
            out: tuple[torch.Tensor, ...] = ()
            for key, part in zip(keys, parts):
                out += part(value[key])
            return out

        return flatten_dict
    if all(s["t"] == "tensor" for s in spec["items"]):
        return tuple

    def flatten_sequence(value: Sequence[Any]) -> tuple[torch.Tensor, ...]:
        out: tuple[torch.Tensor, ...] = ()
        for item, part in zip(value, parts):
            out += part(item)
        return out

    return flatten_sequence


def unflattener(spec: Spec) -> Callable[[Sequence[torch.Tensor]], Any]:
    """The inverse of :func:`flattener`: rebuild the nested value from the flat tensors."""
    build = _builder(spec)
    return lambda flat: build(flat, 0)[0]


def _builder(spec: Spec) -> Callable[[Sequence[torch.Tensor], int], tuple[Any, int]]:
    kind = spec["t"]
    if kind == "tensor":
        return lambda flat, i: (flat[i], i + 1)
    if kind == "none":
        return lambda flat, i: (None, i)
    parts = [_builder(s) for s in spec["items"]]

    def items(flat: Sequence[torch.Tensor], i: int) -> tuple[list[Any], int]:
        out = []
        for part in parts:
            value, i = part(flat, i)
            out.append(value)
        return out, i

    if kind == "tuple":
        return lambda flat, i: _wrap(tuple, items(flat, i))
    if kind == "list":
        return lambda flat, i: items(flat, i)
    if kind == "namedtuple":
        made = output_tuple(spec["fields"])
        return lambda flat, i: _wrap(lambda values: made(*values), items(flat, i))
    if kind == "dict":
        keys = spec["keys"]
        return lambda flat, i: _wrap(lambda values: dict(zip(keys, values)), items(flat, i))
    raise ValueError(f"unknown tree spec kind {kind!r}")


def _wrap(make: Callable[[list[Any]], Any], built: tuple[list[Any], int]) -> tuple[Any, int]:
    return make(built[0]), built[1]
