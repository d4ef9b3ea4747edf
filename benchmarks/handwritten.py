"""What a PyTorch user writes by hand for a workload, derived from its declaration.

* :func:`loop` — the usual evaluation loop: a ``Dataset`` that preprocesses one item, a
  ``DataLoader`` with the default collate and ``num_workers`` workers, the forward under
  ``torch.no_grad()``, then per-item postprocessing in the main process.
* :func:`single` — one item: preprocess, ``unsqueeze(0)``, forward, item 0, postprocess.
* :func:`padl_style_loop` — the same loop with PADL 0.2's way of postprocessing (an emulation;
  see the comment above it for exactly what it does).
* :func:`preprocess_alone`, :func:`forward_alone`, :func:`postprocess_alone` — each stage alone;
  the slowest of the three bounds the pipeline's throughput (the "limit").
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from benchmarks.measure import Run
from benchmarks.workload import Workload, first, move, rows


class ItemDataset(Dataset[Any]):
    """Preprocesses item ``i`` when the DataLoader asks for it (in a worker when there are any)."""

    def __init__(self, items: Sequence[Any], preprocess: Callable[[Any], Any]) -> None:
        self.items = items
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        return self.preprocess(self.items[index])


@dataclass(frozen=True)
class Setup:
    """One workload ready to run: its items, its model on ``device``, the batch size."""

    workload: Workload
    model: torch.nn.Module
    items: Sequence[Any]
    device: torch.device
    batch_size: int

    def loader(self, workers: int) -> DataLoader[Any]:
        return DataLoader(
            ItemDataset(self.items, self.workload.preprocess),
            batch_size=self.batch_size,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
        )


def loop(setup: Setup, workers: int, sink: Callable[[Any], Any]) -> int:
    """The hand-written evaluation loop; each final output goes to ``sink``."""
    post = setup.workload.postprocess
    count = 0
    with torch.no_grad():
        for batch in setup.loader(workers):
            output = move(
                setup.model(move(batch, setup.device, non_blocking=True)), torch.device("cpu")
            )
            for row in rows(output):
                sink(post(row))
                count += 1
    return count


def single(setup: Setup) -> Callable[[Any], Any]:
    """The hand-written single-item path (what a serving handler does without padlc)."""
    workload, model, device = setup.workload, setup.model, setup.device

    def apply(item: Any) -> Any:
        with torch.no_grad():
            batch = move(default_collate([workload.preprocess(item)]), device)
            return workload.postprocess(first(move(model(batch), torch.device("cpu"))))

    return apply


# --- PADL 0.2-style postprocessing ------------------------------------------------------------
#
# An emulation, for the "padlc eval_apply ≥ 2× PADL-style per-item postprocessing" target, of how
# PADL 0.2's eval_apply postprocessed (padl/transforms.py: `_pd_itercall`, `pd_call_in_mode`,
# `_pd_unpack_args_and_call`, `_unpack_batch`). It is not PADL 0.2 itself, which does not install
# on this Python/torch; it keeps that code path's per-item work and nothing else:
#   * the batch output is split with Python indexing, `output[i]`, until IndexError (`_batch_get`);
#   * each item goes through the post stage, `unbatch >> postprocess`, with `pd_call_in_mode`:
#     set the class-level mode, look the stage's layers up (an lru_cache'd property), call
#     `_pd_unpack_args_and_call`, which inspects the (cached) signature to decide whether to unpack,
#     then `Compose.__call__`, which does the same for each of its two transforms;
#   * `unbatch` in eval mode moves its input to the CPU: a `.cpu()` per item.
# Preprocessing, collation and the forward are the hand-written loop's (PADL 0.2 also set layer
# modes and the grad mode around every forward batch; that per-batch cost is left out).


class _Padl02Transform:
    mode: str | None = None  # PADL 0.2 kept the apply mode on the Transform class

    def __init__(self, call: Callable[[Any], Any]) -> None:
        self.call = call

    @property
    @functools.lru_cache(maxsize=128)  # noqa: B019 - as PADL 0.2 did
    def _pd_signature(self) -> Any:
        return inspect.signature(self.call).parameters

    @property
    @functools.lru_cache(maxsize=128)  # noqa: B019
    def pd_layers(self) -> list[torch.nn.Module]:
        return []

    def _pd_unpack_argument(self, arg: Any) -> bool:
        if not isinstance(arg, tuple | list):
            return False
        count = 0
        for parameter in self._pd_signature.values():
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.POSITIONAL_ONLY):
                count += 1
            if parameter.kind == parameter.VAR_POSITIONAL:
                return True
        return count > 1

    def _pd_unpack_args_and_call(self, arg: Any) -> Any:
        if self._pd_unpack_argument(arg):
            return self.call(*arg)
        return self.call(arg)

    def pd_call_in_mode(self, arg: Any, mode: str) -> Any:
        _ = self.pd_layers  # no layers in a post stage: no layer modes, no grad switch
        _Padl02Transform.mode = mode
        try:
            return self._pd_unpack_args_and_call(arg)
        finally:
            _Padl02Transform.mode = None


def _unbatch_eval(value: Any) -> Any:
    """PADL 0.2's ``Unbatchify`` outside infer mode: move to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, tuple | list):
        return type(value)(_unbatch_eval(item) for item in value)
    return value


def _padl02_post_stage(postprocess: Callable[[Any], Any]) -> _Padl02Transform:
    steps = [_Padl02Transform(_unbatch_eval), _Padl02Transform(postprocess)]

    def compose(value: Any) -> Any:  # Compose.__call__
        for step in steps:
            value = step._pd_unpack_args_and_call(value)
        return value

    return _Padl02Transform(compose)


def _batch_get(output: Any, index: int) -> Any:
    if isinstance(output, tuple | list):
        return type(output)(_batch_get(value, index) for value in output)
    if isinstance(output, dict):
        return {key: _batch_get(value, index) for key, value in output.items()}
    return output[index]


def padl_style_loop(setup: Setup, workers: int, sink: Callable[[Any], Any]) -> int:
    """:func:`loop` with PADL 0.2's per-item postprocessing (see the comment above)."""
    post = _padl02_post_stage(setup.workload.postprocess)
    count = 0
    with torch.no_grad():
        for batch in setup.loader(workers):
            output = setup.model(move(batch, setup.device))
            items = []
            index = 0
            while True:
                try:
                    items.append(_batch_get(output, index))
                except IndexError:
                    break
                index += 1
            for item in items:
                sink(post.pd_call_in_mode(item, "eval"))
                count += 1
    return count


# --- each stage alone -------------------------------------------------------------------------


def preprocess_alone(setup: Setup, workers: int) -> Run:
    """The host side alone: preprocess + default collate through the same DataLoader (so with
    ``workers`` > 0 with the same parallelism as the loops); the batches are dropped."""

    def run() -> int:
        count = 0
        for batch in setup.loader(workers):
            count += len(batch) if isinstance(batch, torch.Tensor) else len(rows(batch))
        return count

    return run


def collated_batches(setup: Setup, limit: int) -> list[Any]:
    """Up to ``limit`` batches, preprocessed and collated ahead of time, on the device."""
    batches = []
    for batch in setup.loader(0):
        batches.append(move(batch, setup.device))
        if len(batches) == limit:
            break
    return batches


def _cycled(values: list[Any], setup: Setup) -> list[Any]:
    """As many batches as the items make, cycling through ``values`` (a few distinct batches keep
    memory bounded; the last batch of ``values`` may be short, so counts are taken per batch)."""
    batches = -(-len(setup.items) // setup.batch_size)
    return [values[i % len(values)] for i in range(batches)]


def forward_alone(setup: Setup, batches: list[Any]) -> Run:
    """The network alone on pre-collated device batches, under ``torch.no_grad()``."""
    schedule = _cycled(batches, setup)
    count = sum(
        len(rows(batch)) if not isinstance(batch, torch.Tensor) else len(batch)
        for batch in schedule
    )

    def run() -> int:
        with torch.no_grad():
            for batch in schedule:
                setup.model(batch)
        return count

    return run


def forward_outputs(setup: Setup, batches: list[Any]) -> list[Any]:
    with torch.no_grad():
        return [move(setup.model(batch), torch.device("cpu")) for batch in batches]


def postprocess_alone(setup: Setup, outputs: list[Any]) -> Run:
    """Splitting the (CPU) forward outputs into items and postprocessing each, alone."""
    post = setup.workload.postprocess
    schedule = _cycled(outputs, setup)

    def run() -> int:
        count = 0
        for output in schedule:
            for row in rows(output):
                post(row)
                count += 1
        return count

    return run
