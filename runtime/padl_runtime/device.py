"""Functions moved into a forward that runs on an accelerator see their constant tensors there."""

from __future__ import annotations

import types
import weakref
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["with_tensors_on"]

_CACHE: weakref.WeakKeyDictionary[Any, dict[torch.device, Callable[..., Any]]] = (
    weakref.WeakKeyDictionary()
)


def with_tensors_on(function: Callable[..., Any], device: torch.device | str) -> Callable[..., Any]:
    """``function`` with the tensors it reads from its module's globals and its closure on ``device``.

    A preprocess step such as ``(image - MEAN) / STD``, with ``MEAN`` a module-level CPU tensor,
    runs on the CPU item by item; moved into a forward that runs on a GPU (the stage-boundary
    move), it must find ``MEAN`` on the GPU. The copy is made once per function and device and
    reused. Only the names the function's own code reads are moved (not those of functions it
    calls); on the CPU, or for anything but a plain Python function, ``function`` is returned as is.

    >>> import torch
    >>> SCALE = torch.tensor([2.0])
    >>> def scale(x):
    ...     return x * SCALE
    >>> with_tensors_on(scale, "cpu") is scale
    True
    """
    device = torch.device(device)
    if device.type == "cpu" or type(function) is not types.FunctionType:
        return function
    per_device = _CACHE.setdefault(function, {})
    moved = per_device.get(device)
    if moved is None:
        moved = per_device[device] = _rebound(function, device)
    return moved


def _rebound(function: types.FunctionType, device: torch.device) -> types.FunctionType:
    namespace = function.__globals__
    tensors = {
        name: namespace[name].to(device)
        for name in function.__code__.co_names
        if isinstance(namespace.get(name), torch.Tensor) and namespace[name].device != device
    }
    cells = function.__closure__ or ()
    closure = tuple(_cell_on(cell, device) for cell in cells)
    if not tensors and all(a is b for a, b in zip(cells, closure, strict=True)):
        return function
    # A snapshot of the module's namespace with the tensors replaced (globals must be a dict).
    rebound = types.FunctionType(
        function.__code__,
        {**namespace, **tensors},
        function.__name__,
        function.__defaults__,
        closure or None,
    )
    rebound.__kwdefaults__ = function.__kwdefaults__
    rebound.__qualname__ = function.__qualname__
    rebound.__module__ = function.__module__
    rebound.__doc__ = function.__doc__
    return rebound


def _cell_on(cell: types.CellType, device: torch.device) -> types.CellType:
    try:
        value = cell.cell_contents
    except ValueError:  # an empty cell
        return cell
    if isinstance(value, torch.Tensor) and value.device != device:
        return types.CellType(value.to(device))
    return cell
