"""The verifying process of ``padlc build``: load a written artifact with ``padl_runtime`` alone
and run the examples through it (see :mod:`padlc.builder.verify`).

It runs as a script, ``python -I -B verify_child.py SYS_PATH ROOT BACKEND INPUTS OUTPUTS TIMING``,
so that importing it does not import padlc, and it makes any import of padlc fail: generated code
must not import padlc (invariant 2). :func:`canonical` is shared with the parent, which compares
the outputs it sends back with the eager pipeline's.
"""

from __future__ import annotations

import enum
import importlib.abc
import importlib.machinery
import json
import pickle
import sys
import time
import traceback
from collections.abc import Sequence
from typing import Any

# torch is imported where it is used: the process sets sys.path (the parent's) before importing
# anything but the standard library.

__all__ = ["NoPadlc", "canonical", "main", "run"]


def canonical(value: Any) -> Any:
    """Outputs in a form that pickles without the artifact's classes: namedtuples, enums and
    instances of the user's classes (a dataclass the postprocess returns) become plain tuples of
    their type name and state, which the parent compares with its own outputs'.

    >>> from collections import namedtuple
    >>> canonical(namedtuple("Out", "label score")(3, 0.5))
    ('<namedtuple>', ('label', 'score'), (3, 0.5))
    """
    import torch

    if value is None or isinstance(value, bool | int | float | complex | str | bytes):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return ("<namedtuple>", tuple(value._fields), tuple(canonical(v) for v in value))
    if isinstance(value, tuple):
        return tuple(canonical(v) for v in value)
    if isinstance(value, list):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    if type(value).__module__ == "numpy":
        return torch.as_tensor(value) if hasattr(value, "shape") else value.item()
    if isinstance(value, enum.Enum):
        return ("<enum>", type(value).__qualname__, value.name)
    state = getattr(value, "__dict__", None)
    if state is None and hasattr(type(value), "__slots__"):
        state = {k: getattr(value, k) for k in type(value).__slots__ if hasattr(value, k)}
    if isinstance(state, dict) and type(value).__module__ != "builtins":
        return ("<object>", type(value).__qualname__, {k: canonical(v) for k, v in state.items()})
    return value


class NoPadlc(importlib.abc.MetaPathFinder):
    """An import finder that makes importing padlc fail loudly (generated code must not)."""

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name == "padlc" or name.startswith("padlc."):
            raise ImportError(
                f"{name} imported while running a built artifact: generated code must not "
                "import padlc"
            )
        return None


def run(root: str, backend: str, inputs: list[Any], timing: float) -> dict[str, Any]:
    """Load ``root`` with ``backend`` and apply it to ``inputs``: the outputs of ``infer_apply``
    and of one ``eval_apply`` (in batches of at most the artifact's ``max_batch``), how long the
    load took and, when ``timing`` (seconds), ``infer_apply``'s best time per item."""
    result: dict[str, Any] = {}
    started = time.perf_counter()
    import padl_runtime

    pipeline = padl_runtime.load(root, backend=backend, trust_code=True)  # the build wrote it
    result["load_seconds"] = time.perf_counter() - started
    result["backend"] = pipeline.backend.name
    result["infer"] = [canonical(pipeline.infer_apply(x)) for x in inputs]
    size = min(len(inputs), pipeline.max_batch or len(inputs))
    try:
        result["eval"] = [
            canonical(y) for y in pipeline.eval_apply(inputs, batch_size=size, flatten=True)
        ]
    except padl_runtime.ModeUnavailableError as exc:
        result["eval_refused"] = str(exc)
    if timing:  # the best of several rounds over the examples, per item
        rounds: list[float] = []
        deadline = time.perf_counter() + timing
        while len(rounds) < 3 or (len(rounds) < 50 and time.perf_counter() < deadline):
            tick = time.perf_counter()
            for x in inputs:
                pipeline.infer_apply(x)
            rounds.append((time.perf_counter() - tick) / len(inputs))
        result["infer_seconds"] = min(rounds)
    result["padlc_imported"] = any(m == "padlc" or m.startswith("padlc.") for m in sys.modules)
    return result


def main(argv: Sequence[str]) -> int:
    """The process: arguments in, a pickled result dict written to the outputs file (an
    ``error`` entry with the traceback when loading or running failed)."""
    sys.meta_path.insert(0, NoPadlc())
    sys.path[:] = json.loads(argv[0])
    root, backend, data_file, out_file = argv[1:5]
    timing = float(argv[5])  # seconds to spend timing infer_apply (0: none)
    try:
        with open(data_file, "rb") as handle:
            inputs = pickle.load(handle)  # written by the parent a moment ago
        result = run(root, backend, inputs, timing)
    except BaseException:
        result = {"error": traceback.format_exc()}
    try:
        data = pickle.dumps(result)
    except Exception as exc:
        data = pickle.dumps(
            {
                "error": (
                    f"the artifact's outputs cannot be sent back to padlc build for comparison: "
                    f"{exc}. Return plain values from the postprocess (numbers, strings, tensors, "
                    "lists, tuples, dicts, dataclasses or other objects whose attributes are such "
                    "values)."
                )
            }
        )
    with open(out_file, "wb") as handle:
        handle.write(data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
