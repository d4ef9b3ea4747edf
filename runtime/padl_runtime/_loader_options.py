"""The options of a run that go to torch's ``DataLoader``: those it takes, those the executor
sets itself, and the error for one it does not know, with the nearest option named."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from torch.utils.data import DataLoader

from padl_runtime.keywords import unknown_keywords

__all__ = ["RESERVED", "check_loader_options", "loader_options"]

#: Set by the executor, which builds the DataLoader's batching itself (one dataset item = one
#: whole batch).
RESERVED = frozenset(
    {"dataset", "batch_size", "sampler", "batch_sampler", "collate_fn", "pin_memory"}
)


@functools.cache
def loader_options() -> frozenset[str]:
    """The keyword arguments torch's DataLoader takes (what ``**loader_kwargs`` may hold)."""
    parameters = inspect.signature(DataLoader.__init__).parameters
    return frozenset(name for name in parameters if name != "self")


def _options(run: Callable[..., Any]) -> set[str]:
    """Every keyword option: ``run``'s own and the DataLoader's (for "did you mean")."""
    own = inspect.signature(run).parameters.values()
    return {p.name for p in own if p.kind is p.KEYWORD_ONLY} | (loader_options() - RESERVED)


def check_loader_options(loader_kwargs: Mapping[str, Any], run: Callable[..., Any]) -> None:
    """A ``TypeError`` for an option neither ``run`` (``run_batches``) nor the DataLoader takes,
    or one the executor sets itself."""
    unknown = loader_kwargs.keys() - loader_options()
    if unknown:
        raise unknown_keywords(
            run.__name__,
            unknown,
            _options(run),
            "The options are those of run_batches and of torch's DataLoader.",
        )
    reserved = sorted(RESERVED & loader_kwargs.keys())
    if reserved:
        raise TypeError(
            f"run_batches() sets the DataLoader's {', '.join(reserved)} itself; "
            "use its own batch_size / pin_memory / preprocess arguments instead."
        )
