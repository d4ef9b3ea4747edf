"""One item of a batch failing without failing the others: :class:`ItemError` and its helpers.

A server batches items from many requests; one request's bad item must cost that request only.
The per-batch entry points of :class:`~padl_runtime.CompiledPipeline` (``apply_batch`` and its
three stages) therefore take ``return_exceptions=True``, as :func:`asyncio.gather` does: an item
that fails gets an :class:`ItemError` in its place, naming the stage and the step (the transform's
function) that raised, and the other items go on.

An :class:`ItemError` holds only strings and numbers, so it pickles whatever the original
exception was (it crosses from worker processes to the server); in the process where the item
failed its ``__cause__`` is the original exception, with its traceback.
"""

from __future__ import annotations

import linecache
import traceback
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from types import CodeType
from typing import Any

import torch

from padl_runtime._batch_source import add_note
from padl_runtime.collate import collate

__all__ = ["ItemError", "apply_each", "collate_or_isolate", "failing_step"]


class ItemError(Exception):
    """One item of a batch failed in ``stage`` ("preprocess", "forward" or "postprocess").

    ``index`` is the item's position in the batch; ``step`` names the transform that raised
    (``"to_tensor"``), ``location`` the generated line that called it (``"stages.py:9"``), when
    known. ``error_type`` and ``message`` describe the original exception, ``details`` is its
    formatted traceback.

    >>> error = ItemError(2, "preprocess", "ValueError", "too short", step="to_tensor")
    >>> str(error)
    'item 2: the preprocess step to_tensor raised ValueError: too short'
    """

    def __init__(
        self,
        index: int,
        stage: str,
        error_type: str,
        message: str,
        *,
        step: str | None = None,
        location: str | None = None,
        details: str = "",
    ) -> None:
        super().__init__(index, stage, error_type, message, step, location, details)
        self.index = index
        self.stage = stage
        self.error_type = error_type
        self.message = message
        self.step = step
        self.location = location
        self.details = details

    def __reduce__(self) -> Any:
        return (_rebuild_item_error, self.args)

    def describe(self) -> str:
        """What failed, without the item's position: ``the preprocess step to_tensor (stages.py:9)
        raised ValueError: too short``."""
        where = f"the {self.stage}"
        if self.step:
            where += f" step {self.step}"
        if self.location:
            where += f" ({self.location})"
        return f"{where} raised {self.error_type}: {self.message}"

    def __str__(self) -> str:
        return f"item {self.index}: {self.describe()}"

    def at(self, index: int) -> ItemError:
        """The same failure at another position (an item's index in its request, say)."""
        error = ItemError(
            index,
            self.stage,
            self.error_type,
            self.message,
            step=self.step,
            location=self.location,
            details=self.details,
        )
        error.__cause__ = self.__cause__
        return error

    @classmethod
    def from_exception(
        cls,
        exc: BaseException,
        index: int,
        stage: str,
        function: Callable[..., Any] | None = None,
    ) -> ItemError:
        """The :class:`ItemError` for ``exc``, raised by ``function`` (a generated stage function,
        whose failing line and callee name the step) on the item at ``index``."""
        step, location = failing_step(exc, function) if function is not None else (None, None)
        message = str(exc).strip() or repr(exc)
        notes = getattr(exc, "__notes__", None)
        if notes:
            message += " (" + "; ".join(map(str, notes)) + ")"
        error = cls(
            index,
            stage,
            type(exc).__name__,
            message,
            step=step,
            location=location,
            details="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        )
        error.__cause__ = exc
        return error


def _rebuild_item_error(*args: Any) -> ItemError:
    index, stage, error_type, message, step, location, details = args
    return ItemError(
        index, stage, error_type, message, step=step, location=location, details=details
    )


def _code_of(function: Callable[..., Any]) -> CodeType | None:
    function = getattr(function, "fn", function)  # a StageFunction wraps the generated function
    code = getattr(function, "__code__", None)
    return code if isinstance(code, CodeType) else None


def failing_step(exc: BaseException, function: Callable[..., Any]) -> tuple[str | None, str | None]:
    """``(step, location)`` of an exception raised inside the generated stage ``function``: the
    function it was calling when it raised (``"to_tensor"``, ``"Tokenizer.__call__"``) and the
    generated line (``"stages.py:9"``). ``(None, None)`` when the traceback does not pass through
    ``function``; the step is ``None`` when the generated line itself raised."""
    code = _code_of(function)
    tb = exc.__traceback__
    while tb is not None and code is not None:
        if tb.tb_frame.f_code is code:
            filename = code.co_filename
            location = f"{filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}"
            callee = tb.tb_next.tb_frame.f_code if tb.tb_next is not None else None
            if callee is None:
                line = linecache.getline(filename, tb.tb_lineno).strip()
                return None, f"{location} `{line}`" if line else location
            return getattr(callee, "co_qualname", callee.co_name), location
        tb = tb.tb_next
    return None, None


def apply_each(
    function: Callable[[Any], Any],
    values: Sequence[Any],
    stage: str,
    return_exceptions: bool,
) -> list[Any]:
    """``[function(v) for v in values]``, skipping entries that are already :class:`ItemError`.

    A failure raises, with a note naming the item, or with ``return_exceptions`` becomes that
    item's :class:`ItemError`."""
    if not any(isinstance(v, ItemError) for v in values):
        results: list[Any] = []
        try:
            results.extend(map(function, values))  # the common case, the loop in C
            return results
        except Exception as exc:
            if not return_exceptions:
                add_note(exc, f"while {_verb(stage)} item {len(results)} of the batch", stage)
                raise
            failed = len(results)
            results.append(ItemError.from_exception(exc, failed, stage, function))
            start = failed + 1
    else:
        results, start = [], 0
    for index in range(start, len(values)):
        value = values[index]
        if isinstance(value, ItemError):
            results.append(value)
            continue
        try:
            results.append(function(value))
        except Exception as exc:
            if not return_exceptions:
                add_note(exc, f"while {_verb(stage)} item {index} of the batch", stage)
                raise
            results.append(ItemError.from_exception(exc, index, stage, function))
    return results


def _verb(stage: str) -> str:
    return {"preprocess": "preprocessing", "postprocess": "postprocessing"}.get(
        stage, f"running the {stage} of"
    )


def _signature(value: Any) -> Hashable:
    """What two values must share to be collated together: structure, dtypes and shapes."""
    if isinstance(value, torch.Tensor):
        return ("tensor", value.dtype, tuple(value.shape))
    if isinstance(value, bool | int | float | str | bytes) or value is None:
        return type(value).__name__
    if isinstance(value, Mapping):
        return ("dict", tuple((k, _signature(v)) for k, v in value.items()))
    if isinstance(value, tuple | list):
        return (type(value).__name__, tuple(_signature(v) for v in value))
    return type(value).__name__


def _describe(signature: Hashable) -> str:
    if isinstance(signature, tuple) and signature and signature[0] == "tensor":
        _, dtype, shape = signature
        return f"a {str(dtype).removeprefix('torch.')} tensor of shape {list(shape)}"
    return repr(signature)


def collate_or_isolate(values: Sequence[Any]) -> tuple[Any, list[int], dict[int, ItemError]]:
    """``collate(values)``, or, when some values cannot be batched with the rest, the batch of
    those that can: ``(batch, positions batched, {position: ItemError})``. The values that share
    the most common structure, dtypes and shapes make the batch (a tie: the earliest)."""
    try:
        return collate(values), list(range(len(values))), {}
    except Exception as exc:
        cause = exc
    signatures = [_signature(v) for v in values]
    counts = Counter(signatures)
    majority = max(counts, key=lambda s: (counts[s], -signatures.index(s)))
    keep = [i for i, s in enumerate(signatures) if s == majority]
    errors: dict[int, ItemError] = {}
    if len(keep) == len(values):  # all alike and still not collatable: every item fails
        for i in range(len(values)):
            errors[i] = ItemError.from_exception(cause, i, "forward")
        return None, [], errors
    for i, s in enumerate(signatures):
        if s != majority:
            errors[i] = ItemError(
                i,
                "preprocess",
                "ValueError",
                f"the preprocess made {_describe(s)}, which cannot be batched with the other "
                f"items of the batch ({_describe(majority)}); make the preprocess return one "
                "shape for every item (pad, crop or resize it)",
            )
    try:
        batch = collate([values[i] for i in keep])
    except Exception as exc:  # pragma: no cover - alike values collate
        for i in keep:
            errors[i] = ItemError.from_exception(exc, i, "forward")
        return None, [], errors
    return batch, keep, errors
