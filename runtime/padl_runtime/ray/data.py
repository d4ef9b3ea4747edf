"""Batch inference with Ray Data: :func:`predict` runs a Dataset's column through a built
artifact, on an actor pool that loads the artifact once per actor.

Each batch of rows goes through :meth:`CompiledPipeline.apply_batch
<padl_runtime.CompiledPipeline.apply_batch>`: the preprocess of each row, one forward of the
batch, the postprocess of each row; the output of a row is what ``eval_apply`` (and
``infer_apply``) give for its input.

**Inputs** are the column's values as Python objects (``pyarrow``'s ``to_pylist``): what
``ray.data.from_items`` was given comes back as it was (lists, dicts, strings, numbers, bytes);
a tensor column (``ray.data.from_numpy``) gives numpy arrays.

**Outputs** are stored as Ray Data stores values: a torch tensor as a numpy array (a tensor
column when every row's has one shape), dicts as struct columns (a tensor inside one as a list),
numbers, strings and bytes as themselves, anything else (tuples, objects) as Ray's pickled Python
objects. Rows keep their other columns.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from padl_runtime.failures import ItemError
from padl_runtime.ray._loading import ArtifactRef, require_ray
from padl_runtime.ray.errors import RowError

if TYPE_CHECKING:
    import pyarrow
    import ray.data

__all__ = ["CALL_BATCHES", "TASKS_IN_FLIGHT", "Predictor", "predict"]

#: Forward batches per call of an actor, by default (``rows_per_call``): Ray's cost per call is
#: shared by this many batches (docs/scaling.md).
CALL_BATCHES = 32
#: Calls queued at an actor while it runs one (Ray's default is 2): the next bundle of rows is
#: fetched while the actor computes, so that it does not wait between calls.
TASKS_IN_FLIGHT = 4


def predict(
    ds: ray.data.Dataset,
    path: str | os.PathLike[str],
    *,
    input_column: str = "item",
    output_column: str = "output",
    error_column: str | None = None,
    batch_size: int = 256,
    concurrency: int | tuple[int, int] = 1,
    num_gpus: float = 0,
    num_cpus: float | None = None,
    rows_per_call: int | None = None,
    **load_options: Any,
) -> ray.data.Dataset:
    """``ds`` with the pipeline's output for each row's ``input_column`` in ``output_column``.

    The artifact is loaded once per actor of a pool of ``concurrency`` actors (an int, or
    ``(min, max)`` for a pool that grows with the work), each given ``num_gpus`` GPUs (then the
    artifact is loaded on ``cuda`` unless ``device`` says otherwise) and ``num_cpus`` CPUs (Ray
    Data's default when ``None``). An actor is handed ``rows_per_call`` rows at a time (default
    ``CALL_BATCHES * batch_size``; Ray bundles smaller blocks up to it) and runs one forward per
    ``batch_size`` of them: Ray costs several milliseconds per call on one node, which small rows
    must share out (docs/scaling.md has the measurement); lower it for large rows (images) to
    bound an actor's memory.
    ``load_options`` are those of :func:`padl_runtime.load` (``device``, ``backend``,
    ``trust_code``, ``trusted_keys``): trust is established here, with your trust store and keys,
    and the actors, wherever they run, load the artifact only if its manifest is the one trusted
    here. The path must be readable at the same place on every node that runs an actor.

    A row that fails (its preprocess, forward or postprocess raises) stops the dataset with a
    :class:`~padl_runtime.ray.RowError` naming the row's input and the transform that raised
    (Ray wraps it: ``ray.exceptions.UserCodeException`` on the driver, with its message). With
    ``error_column``, failing rows get ``None`` as output and the failure's description
    (``"the preprocess step parse (stages.py:10) raised ValueError: ..."``) in that column,
    the other rows ``None`` there, and the dataset goes on.

    The result is lazy, like every Ray Dataset: nothing runs until it is consumed (``take``,
    ``write_parquet``, ``iter_batches``, ``materialize``). Row order is Ray Data's: keep an id
    column to match outputs with inputs, or set
    ``ray.data.DataContext.get_current().execution_options.preserve_order = True``.

    >>> ds = ray.data.from_items([{"id": i, "item": x} for i, x in enumerate(items)])  # doctest: +SKIP
    >>> predict(ds, "model.padl", batch_size=512, concurrency=4, num_gpus=1).write_parquet(out)  # doctest: +SKIP
    """
    data = require_ray("ray.data")
    require_ray("pyarrow")
    if num_gpus < 0:
        raise ValueError(f"num_gpus must be >= 0, got {num_gpus}.")
    if input_column == output_column or error_column in (input_column, output_column):
        raise ValueError(
            f"input_column ({input_column!r}), output_column ({output_column!r}) and "
            f"error_column ({error_column!r}) must be different columns."
        )
    if isinstance(concurrency, int):
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1 actor, got {concurrency}.")
        compute = data.ActorPoolStrategy(
            size=concurrency, max_tasks_in_flight_per_actor=TASKS_IN_FLIGHT
        )
    else:
        low, high = concurrency
        if not 1 <= low <= high:
            raise ValueError(f"concurrency=(min, max) needs 1 <= min <= max, got {concurrency}.")
        compute = data.ActorPoolStrategy(
            min_size=low, max_size=high, max_tasks_in_flight_per_actor=TASKS_IN_FLIGHT
        )
    artifact = ArtifactRef.prepare(path, load_options, gpu=num_gpus > 0)
    artifact.check_batch(batch_size, "batch_size")
    call = rows_per_call if rows_per_call is not None else CALL_BATCHES * batch_size
    if call < 1:
        raise ValueError(f"rows_per_call must be at least 1, got {call}.")
    options: dict[str, Any] = {}
    if num_gpus:
        options["num_gpus"] = num_gpus
    if num_cpus is not None:
        options["num_cpus"] = num_cpus
    return ds.map_batches(
        Predictor,
        fn_constructor_kwargs={
            "artifact": artifact,
            "input_column": input_column,
            "output_column": output_column,
            "error_column": error_column,
            "batch_size": batch_size,
        },
        batch_size=call,
        batch_format="pyarrow",
        compute=compute,
        **options,
    )


class Predictor:
    """The callable class given to ``map_batches``: one per actor, loading the artifact once."""

    def __init__(
        self,
        artifact: ArtifactRef,
        input_column: str,
        output_column: str,
        error_column: str | None,
        batch_size: int,
    ) -> None:
        self.pipeline = artifact.load()
        self.batch_size = batch_size
        self.input_column = input_column
        self.output_column = output_column
        self.error_column = error_column

    def __call__(self, batch: pyarrow.Table) -> pyarrow.Table:
        names = batch.column_names
        if self.input_column not in names:
            raise KeyError(
                f"The dataset has no column {self.input_column!r} (its columns: "
                f"{', '.join(map(repr, names))}). Pass input_column= to padl_runtime.ray.predict."
            )
        for column in (self.output_column, self.error_column):
            if column is not None and column in names:
                raise ValueError(
                    f"The dataset already has a column {column!r}; padl_runtime.ray.predict "
                    "would overwrite it. Pass another output_column= (or error_column=)."
                )
        items = batch.column(self.input_column).to_pylist()
        step = self.batch_size
        results: list[Any] = []
        for start in range(0, len(items), step):  # one forward per batch_size rows
            results += self.pipeline.apply_batch(
                items[start : start + step], return_exceptions=True
            )
        failed = [i for i, r in enumerate(results) if r.__class__ is ItemError]
        if failed and self.error_column is None:
            first = failed[0]
            raise RowError.of(
                items[first],
                results[first],
                self.input_column,
                failed=len(failed),
                rows=len(items),
            )
        outputs = results
        if failed:
            outputs = [None if r.__class__ is ItemError else r for r in results]
        batch = _append(batch, self.output_column, outputs)
        if self.error_column is not None:
            errors = [r.describe() if r.__class__ is ItemError else None for r in results]
            batch = _append(batch, self.error_column, errors)
        return batch


#: Values stored as themselves (int64, double, string, bool, binary columns), with no conversion
_SCALARS = frozenset({int, float, str, bool, bytes})


def _to_ray(value: Any) -> Any:
    """``value`` with torch tensors as numpy arrays (Ray Data's form of a tensor)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, dict):
        return {k: _to_ray(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_ray(v) for v in value]
    if isinstance(value, tuple):
        converted = [_to_ray(v) for v in value]
        return type(value)(*converted) if hasattr(value, "_fields") else tuple(converted)
    return value


def _append(batch: pyarrow.Table, name: str, values: list[Any]) -> pyarrow.Table:
    """``batch`` with a column ``name`` holding ``values``, converted as Ray Data converts a
    column a function returns (tensor columns, structs, pickled objects)."""
    import pyarrow
    from ray.data.block import BlockAccessor

    kinds = {v.__class__ for v in values}
    if len(kinds - {type(None)}) == 1 and kinds <= _SCALARS | {type(None)}:
        # the common case (a label, a score, a string): what Ray's conversion gives, directly
        return batch.append_column(name, pyarrow.array(values))
    column = np.empty(len(values), dtype=object)
    for index, value in enumerate(values):  # not column[:] = values: it would broadcast lists
        column[index] = _to_ray(value)
    block = BlockAccessor.batch_to_block({name: column})
    if not isinstance(block, pyarrow.Table):
        shown = ", ".join(sorted(k.__qualname__ for k in kinds))
        raise TypeError(
            f"The pipeline's outputs ({shown}) cannot be stored in one Ray Dataset column "
            f"{name!r}. Make the postprocess return one kind of value for every item."
        )
    return batch.append_column(block.schema.field(0), block.column(0))
