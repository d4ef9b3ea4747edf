"""Train/eval modes of the layers a pipeline applies, switched safely while other threads apply.

A layer's mode (``module.training``) is state of the layer object, shared by every pipeline and
thread that holds it, so switching it around one call could change it under another. Each layer
has a :class:`_Gate`: calls in the same mode share a switch (counted), a call in the other mode
waits until they are done (and, waiting, stops new calls of the first mode from joining), and the
last call of a mode restores every submodule's own flag, not only the top-level layer's.

The common case takes no lock: when no call holds the layer switched and its top-level flag is
already the wanted one (a model put in ``eval()`` and served with ``infer_apply``), the call only
registers itself in a list (one atomic append), and a call that must switch waits until such
calls have left.

>>> import torch
>>> layer = torch.nn.Sequential(torch.nn.Dropout(), torch.nn.BatchNorm1d(3))
>>> frozen = layer[1].eval()             # a frozen BatchNorm inside a training model
>>> with layer_modes([layer], training=False):
...     [m.training for m in layer.modules()]
[False, False, False]
>>> [m.training for m in layer.modules()]
[True, True, False]
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch

__all__ = ["Held", "enter", "gates_of", "layer_modes"]


class _Gate:
    """The mode bookkeeping of one layer (see the module's docstring)."""

    __slots__ = ("__weakref__", "cond", "fast", "mode", "ready", "saved", "users", "waiting")

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        #: the training flag calls hold the layer in; None: at rest, as its owner left it
        self.mode: bool | None = None
        self.users = 0  # calls holding it in `mode`
        self.ready = True  # the switch to `mode` is complete
        #: every switched module's own flag, by id (restored when the last call leaves)
        self.saved: dict[int, tuple[torch.nn.Module, bool]] = {}
        self.fast: list[None] = []  # calls running at rest without a switch (no lock taken)
        self.waiting = 0  # calls waiting for the other mode


# The gate must be found from the layer itself, since every pipeline (and thread) holding the
# layer must use the same one; it is not kept on the layer, which must stay picklable and
# copyable. Weak keys: a gate lives as long as its layer. `transform(layer)` is a shallow copy
# that shares the layer's submodules: it shares the layer's gate too.
_GATES: weakref.WeakKeyDictionary[torch.nn.Module, _Gate] = weakref.WeakKeyDictionary()
_GATES_LOCK = threading.Lock()


def gates_of(layers: Sequence[torch.nn.Module]) -> list[_Gate]:
    """The gate of each layer (made on first use)."""
    gates = []
    for layer in layers:
        while "_pd_wrapped" in layer.__dict__:
            layer = layer.__dict__["_pd_wrapped"]
        gate = _GATES.get(layer)
        if gate is None:
            with _GATES_LOCK:
                gate = _GATES.get(layer)
                if gate is None:
                    gate = _GATES[layer] = _Gate()
        gates.append(gate)
    return gates


class Held:
    """The layers held in one mode by one call; :meth:`release` once, when the call ends."""

    __slots__ = ("fast", "gates", "layers")

    def __init__(
        self, layers: Sequence[torch.nn.Module], gates: Sequence[_Gate], fast: bool
    ) -> None:
        self.layers = layers
        self.gates = gates
        self.fast = fast

    def release(self) -> None:
        if self.fast:
            for gate in self.gates:
                gate.fast.pop()
                if gate.mode is not None:  # a call waits to switch: one call fewer runs
                    with gate.cond:
                        gate.cond.notify_all()
            return
        for gate in reversed(self.gates):
            with gate.cond:
                gate.users -= 1
                if gate.users == 0:
                    for module, training in gate.saved.values():
                        module.training = training
                    gate.saved = {}
                    gate.mode = None
                    gate.cond.notify_all()


def enter(layers: Sequence[torch.nn.Module], gates: Sequence[_Gate], training: bool) -> Held:
    """Hold ``layers`` (each with its gate from :func:`gates_of`) in train (``training``) or
    eval mode until the returned :class:`Held` is released."""
    for gate in gates:
        gate.fast.append(None)
    # Registered first, checked after: a call that switches sets `mode` first and checks the
    # registrations after, so one of the two sees the other.
    for layer, gate in zip(layers, gates):
        if gate.mode is not None or layer.training is not training:
            break
    else:
        return Held(layers, gates, fast=True)
    for gate in gates:
        _leave(gate)
    return _enter_switching(layers, gates, training)


def _leave(gate: _Gate) -> None:
    gate.fast.pop()
    if gate.mode is not None:  # a call waits to switch: tell it that one call fewer runs
        with gate.cond:
            gate.cond.notify_all()


def _enter_switching(
    layers: Sequence[torch.nn.Module], gates: Sequence[_Gate], training: bool
) -> Held:
    order = sorted({id(g): g for g in gates}.values(), key=id)
    while True:
        for gate in order:
            gate.cond.acquire()
        blocker = next(
            (
                g
                for g in order
                if (g.mode is not None and g.mode is not training)
                or (g.mode is training and g.waiting)
            ),
            None,
        )
        if blocker is None:
            claimed = []
            for layer, gate in zip(layers, gates):
                if gate.mode is None:
                    gate.mode = training
                    if layer.training is not training:
                        gate.ready = False
                        claimed.append((layer, gate))
                elif gate.ready and layer.training is not training:
                    # held in this mode through another copy of the layer (the same submodules)
                    _record_and_set(layer, gate, training)
                gate.users += 1
            for gate in order:
                gate.cond.release()
            for layer, gate in claimed:
                _switch(layer, gate, training)
            for gate in order:
                if not gate.ready:
                    with gate.cond:
                        gate.cond.wait_for(_ready(gate))
            return Held(layers, gates, fast=False)
        for gate in order:
            if gate is not blocker:
                gate.cond.release()
        # Waiting for the other mode to end; meanwhile calls of that mode do not join it.
        waits_for_other = blocker.mode is not training
        if waits_for_other:
            blocker.waiting += 1
        try:
            blocker.cond.wait_for(_free_for(blocker, training, int(waits_for_other)))
        finally:
            if waits_for_other:
                blocker.waiting -= 1
            blocker.cond.release()


def _ready(gate: _Gate) -> Callable[[], bool]:
    return lambda: gate.ready


def _free_for(gate: _Gate, training: bool, own: int) -> Callable[[], bool]:
    """Whether a call waiting for ``training`` may try again: the gate is at rest, or in that mode
    with no call (but this one, ``own``) waiting for the other."""
    return lambda: gate.mode is None or (gate.mode is training and not (gate.waiting - own))


def _switch(layer: torch.nn.Module, gate: _Gate, training: bool) -> None:
    """Switch ``layer``'s whole tree once the calls running it at rest have left."""
    with gate.cond:
        gate.cond.wait_for(lambda: not gate.fast)
        _record_and_set(layer, gate, training)
        gate.ready = True
        gate.cond.notify_all()


def _record_and_set(layer: torch.nn.Module, gate: _Gate, training: bool) -> None:
    for module in layer.modules():
        if id(module) not in gate.saved:
            gate.saved[id(module)] = (module, module.training)
        module.training = training


@contextmanager
def layer_modes(layers: Sequence[torch.nn.Module], training: bool) -> Iterator[None]:
    """Hold layers in train/eval mode for the duration, then restore each submodule's own mode."""
    layers = list(layers)
    held = enter(layers, gates_of(layers), training)
    try:
        yield
    finally:
        held.release()
