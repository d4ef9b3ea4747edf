"""What :func:`padl_runtime.ray.predict` raises when a row fails (no Ray import: catch it
anywhere)."""

from __future__ import annotations

import reprlib
from typing import Any

from padl_runtime.failures import ItemError

__all__ = ["RowError", "describe_input"]

_REPR = reprlib.Repr()
_REPR.maxstring = 80
_REPR.maxother = 80
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = 8
_REPR.maxlevel = 3


def describe_input(value: Any) -> str:
    """A short repr of a row's input, for a message (long values are cut with ``...``)."""
    return _REPR.repr(value)


class RowError(Exception):
    """A row of a Ray Dataset failed in the pipeline given to :func:`padl_runtime.ray.predict`.

    ``item`` is a short repr of the row's input; ``stage`` ("preprocess", "forward",
    "postprocess"), ``step`` (the transform's function), ``location`` (the generated line),
    ``error_type`` and ``message`` say what failed, as :class:`~padl_runtime.ItemError` does.

    >>> failure = ItemError(0, "preprocess", "ValueError", "too short", step="to_tensor")
    >>> print(RowError.of([1.0], failure, "item", failed=1, rows=4))  # doctest: +ELLIPSIS
    The row with item=[1.0] failed: the preprocess step to_tensor raised ValueError: too short. Fix...
    """

    def __init__(
        self,
        message: str,
        *,
        item: str,
        stage: str,
        error_type: str,
        error_message: str,
        step: str | None = None,
        location: str | None = None,
    ) -> None:
        super().__init__(message)
        self.item = item
        self.stage = stage
        self.error_type = error_type
        self.message = error_message
        self.step = step
        self.location = location

    @classmethod
    def of(cls, value: Any, failure: ItemError, column: str, *, failed: int, rows: int) -> RowError:
        """The error for the first failing row of a batch: its input ``value`` (in ``column``),
        its :class:`~padl_runtime.ItemError`, and how many of the batch's ``rows`` failed."""
        item = describe_input(value)
        others = (
            f" ({failed} of the {rows} rows given to the actor with it failed.)"
            if failed > 1
            else ""
        )
        return cls(
            f"The row with {column}={item} failed: {failure.describe()}.{others} Fix the input "
            "or the pipeline, or pass error_column='error' to padl_runtime.ray.predict to write "
            "failures into that column and go on.",
            item=item,
            stage=failure.stage,
            error_type=failure.error_type,
            error_message=failure.message,
            step=failure.step,
            location=failure.location,
        )

    def __reduce__(self) -> Any:
        # Ray sends it from the actor to the driver: keyword arguments survive pickling this way
        return (_rebuild, (str(self), self.__dict__.copy()))


def _rebuild(message: str, fields: dict[str, Any]) -> RowError:
    error = RowError.__new__(RowError)
    Exception.__init__(error, message)
    error.__dict__.update(fields)
    return error
