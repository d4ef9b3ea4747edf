"""Finding what a command line names: a module's pipeline and its example inputs.

``padlc build`` takes its pipeline as

- ``MODULE:ATTR`` (``mypackage.models:pipeline``, ``path/to/script.py:pipeline``), or
- ``MODULE`` alone (``pl``, ``path/to/pl.py``): the module's variable ``pipeline`` when it is a
  transform, else the module's only pipeline: the one module-level transform that is not a part of
  another (``model = transform(Net)(...)`` used in ``pipeline = prep >> batch >> model ...`` is a
  part). Several candidates: an error listing them and how to choose (``pl:name``).

The examples come from ``--inputs`` (``MODULE:ATTR``, or an attribute of the pipeline's module)
or, without it, the pipeline module's variable ``example_inputs`` (:data:`EXAMPLES_VARIABLE`).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = [
    "EXAMPLES_VARIABLE",
    "PIPELINE_VARIABLE",
    "import_file",
    "locate_inputs",
    "locate_pipeline",
    "resolve",
]

#: the module variable a pipeline module's examples are read from when --inputs is not given
EXAMPLES_VARIABLE = "example_inputs"
#: the module variable that is the pipeline when the module has several
PIPELINE_VARIABLE = "pipeline"


def import_file(path: Path) -> ModuleType:
    """Import a ``.py`` file as the top-level module named after it, as ``python path`` would make
    it importable for its own worker processes (once: a second call returns the same module)."""
    name = path.stem
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__file__", None) == str(path):
        return module
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _import_module(name: str) -> ModuleType:
    """``importlib.import_module``, with a plain error when the module itself is not found (a
    module that is found but fails inside keeps its own traceback: that is the user's code)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing != name and not name.startswith(missing + "."):
            raise  # something the module imports is missing: its traceback says where
        raise SystemExit(
            f"padlc: cannot import {name!r}: no module {missing!r} on the path (the current "
            f"directory {os.getcwd()} and PYTHONPATH). Run padlc from the directory that holds "
            f"it, add that directory to PYTHONPATH, or give the file: path/to/{name.split('.')[-1]}.py:ATTR"
        ) from None


def _is_file(reference: str) -> bool:
    return reference.endswith(".py") or os.sep in reference or "/" in reference


def load_module(reference: str) -> ModuleType:
    """A dotted module name or a path to a ``.py`` file, imported."""
    if _is_file(reference):
        path = Path(reference).resolve()
        if not path.is_file():
            raise SystemExit(f"padlc: no file {path}")
        return import_file(path)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    return _import_module(reference)


def _attribute(module: ModuleType, module_name: str, attr: str) -> Any:
    value: Any = module
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise SystemExit(f"padlc: {module_name} has no attribute {attr!r}") from None
    return value


def resolve(reference: str) -> Any:
    """``MODULE:ATTR`` -> the object; MODULE is a dotted module or a path to a ``.py`` file."""
    module_name, sep, attr = reference.rpartition(":")
    if not sep or not module_name or not attr:
        raise SystemExit(
            f"padlc: expected MODULE:ATTR (e.g. mypackage.models:pipeline), got {reference!r}"
        )
    return _attribute(load_module(module_name), module_name, attr)


def locate_pipeline(reference: str) -> tuple[Any, ModuleType]:
    """The pipeline ``reference`` names (``MODULE:ATTR`` or ``MODULE``) and its module."""
    module_name, sep, attr = reference.rpartition(":")
    if sep and module_name and attr:
        module = load_module(module_name)
        return _attribute(module, module_name, attr), module
    module = load_module(reference)
    return _only_pipeline(module, reference), module


def _only_pipeline(module: ModuleType, reference: str) -> Any:
    from padlc.language.base import Transform
    from padlc.language.markers import Batchify, Identity, Unbatchify

    named = getattr(module, PIPELINE_VARIABLE, None)
    if isinstance(named, Transform):
        return named
    found = {
        name: value
        for name, value in vars(module).items()
        if isinstance(value, Transform)
        and not name.startswith("_")
        and not isinstance(value, Identity | Batchify | Unbatchify)
    }
    parts = {
        id(part)
        for value in found.values()
        for part in value.pd_iter_transforms()
        if part is not value
    }
    candidates = [name for name, value in found.items() if id(value) not in parts]
    if len(candidates) == 1:
        return found[candidates[0]]
    where = reference.removesuffix(".py") if not _is_file(reference) else reference
    if not candidates:
        raise SystemExit(
            f"padlc: {where} defines no pipeline (no module-level padlc transform). Name the "
            f"pipeline to build, {reference}:ATTR, or assign it to `{PIPELINE_VARIABLE}` in the "
            "module."
        )
    listed = ", ".join(candidates)
    raise SystemExit(
        f"padlc: {where} defines several pipelines ({listed}): choose one as "
        f"{reference}:{candidates[0]}, or name the one to build `{PIPELINE_VARIABLE}`."
    )


def locate_inputs(reference: str | None, module: ModuleType, pipeline_reference: str) -> Any:
    """The examples ``--inputs`` names (``MODULE:ATTR`` or an attribute of the pipeline's
    module), or the pipeline module's :data:`EXAMPLES_VARIABLE`."""
    if reference is not None and ":" in reference:
        return resolve(reference)
    name = reference or EXAMPLES_VARIABLE
    if hasattr(module, name):
        return _attribute(module, module.__name__, name)
    if reference is not None:
        raise SystemExit(
            f"padlc: {module.__name__} has no attribute {reference!r} (--inputs); give "
            "MODULE:ATTR for examples in another module."
        )
    raise SystemExit(
        f"padlc: no example inputs for {pipeline_reference}: pass --inputs MODULE:ATTR (a list "
        f"of raw items, at least 2), or define `{EXAMPLES_VARIABLE} = [item1, item2, ...]` in "
        f"{module.__name__}."
    )
