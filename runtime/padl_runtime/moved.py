"""Preprocess functions moved into the forward by padlc's stage-boundary move.

A trailing per-item preprocess function (``normalise(image)``) moved after ``batch`` runs once per
batch as ``torch.vmap(normalise)``: :func:`per_item` does that in generated code, and
:func:`with_tensors_on` gives the function its constant tensors on the forward's device.
"""

from __future__ import annotations

import types
import weakref
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["per_item", "with_tensors_on"]

# The function made for each device, kept with the code object it was made from; its globals
# are read live (_OnDevice), so nothing in it goes stale.
_CACHE: weakref.WeakKeyDictionary[Any, dict[torch.device, tuple[Any, Callable[..., Any]]]] = (
    weakref.WeakKeyDictionary()
)


def per_item(function: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor) -> torch.Tensor:
    """``function`` applied to every item of ``batch``: ``torch.vmap(function)(batch)``.

    A batch of one item (``infer_apply``) calls ``function(batch[0])`` directly, which is the same
    result without vmap's set-up (tens of microseconds, more than a small function itself).

    >>> import torch
    >>> per_item(lambda x: x / x.sum(), torch.tensor([[1.0, 3.0], [2.0, 2.0]]))
    tensor([[0.2500, 0.7500],
            [0.5000, 0.5000]])
    """
    function = with_tensors_on(function, batch.device)
    if batch.shape[0] == 1:
        return function(batch[0]).unsqueeze(0)
    return torch.vmap(function)(batch)


def with_tensors_on(function: Callable[..., Any], device: torch.device | str) -> Callable[..., Any]:
    """``function`` with the tensors it reads from its module's globals and its closure on ``device``.

    A preprocess step such as ``(image - MEAN) / STD``, with ``MEAN`` a module-level CPU tensor,
    runs on the CPU item by item; moved into a forward that runs on a GPU (the stage-boundary
    move), it must find ``MEAN`` on the GPU. The copy is made once per function and device and
    reused. Only the names the function's own code reads are moved (not those of functions it
    calls); every other global is read from the module as it is at the call, so a constant changed
    since is seen. On the CPU, or for anything but a plain Python function, ``function`` is
    returned as is.

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
    entry = per_device.get(device)
    if entry is None or entry[0] is not function.__code__:  # made again for new code
        entry = per_device[device] = (function.__code__, _rebound(function, device))
    return entry[1]


def _rebound(function: types.FunctionType, device: torch.device) -> types.FunctionType:
    namespace = function.__globals__
    moves_globals = any(
        isinstance(namespace.get(name), torch.Tensor) for name in function.__code__.co_names
    )
    cells = function.__closure__ or ()
    closure = tuple(_cell_on(cell, device) for cell in cells)
    if not moves_globals and all(a is b for a, b in zip(cells, closure, strict=True)):
        return function
    rebound = types.FunctionType(
        function.__code__,
        _OnDevice(namespace, device) if moves_globals else namespace,
        function.__name__,
        function.__defaults__,
        closure or None,
    )
    rebound.__kwdefaults__ = function.__kwdefaults__
    rebound.__qualname__ = function.__qualname__
    rebound.__module__ = function.__module__
    rebound.__doc__ = function.__doc__
    return rebound


class _OnDevice(dict):  # type: ignore[type-arg]
    """A function's module globals as the function reads them on ``device``: each lookup reads
    the module's current value (a constant changed since is seen), and a tensor comes as its
    copy on the device (made once per tensor object)."""

    __slots__ = ("_device", "_live", "_moved")

    def __init__(self, live: dict[str, Any], device: torch.device) -> None:
        super().__init__()
        if "__builtins__" in live:
            dict.__setitem__(self, "__builtins__", live["__builtins__"])
        self._live = live
        self._device = device
        self._moved: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def __getitem__(self, name: str) -> Any:
        value = self._live[name]  # a KeyError sends the lookup on to the builtins
        if isinstance(value, torch.Tensor) and value.device != self._device:
            moved = self._moved.get(name)
            if moved is None or moved[0] is not value:
                moved = self._moved[name] = (value, value.to(self._device))
            return moved[1]
        return value


def _cell_on(cell: types.CellType, device: torch.device) -> types.CellType:
    try:
        value = cell.cell_contents
    except ValueError:  # an empty cell
        return cell
    if isinstance(value, torch.Tensor) and value.device != device:
        return types.CellType(value.to(device))
    return cell
