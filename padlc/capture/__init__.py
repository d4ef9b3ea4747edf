"""Capturing a pipeline's code and values at save time.

:func:`capture_pipeline` writes the lineage module (``pipeline.py``: the user's code, the imports it
needs and the pipeline expression ``_pd_main = ...``) with its weights and data files;
:func:`capture_plain` renders the same definitions as plain Python (no padlc) for a build's stage
module. Objects are found by identity and captured with their current values, at save time only.
"""

from __future__ import annotations

import builtins
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from padl_runtime.values import TIES_KEY
from padlc.capture import installed
from padlc.capture.expressions import ATOM, SHIFT, default_hint
from padlc.capture.markers import loading_params, param, value
from padlc.capture.module import GeneratedModule
from padlc.capture.render import Renderer
from padlc.capture.shared import SharedData
from padlc.errors import SaveError
from padlc.language.atomic import FunctionTransform
from padlc.language.base import Transform
from padlc.language.combinators import Compose
from padlc.language.markers import Batchify, Identity, Unbatchify
from padlc.language.same import Same

__all__ = [
    "CapturedCode",
    "capture_pipeline",
    "capture_plain",
    "hooked_transforms",
    "loading_params",
    "param",
    "value",
]

MODULE_FILE = "pipeline.py"
WEIGHTS_FILE = "weights.safetensors"
#: Set by a lineage module saved with ``pd_save_options={'torch.nn.Module': 'no-save'}``.
WEIGHTS_LEFT_OUT = "_pd_weights_left_out"
LINE_WIDTH = 88


@dataclass(frozen=True)
class CapturedCode:
    """A generated module: its ``source``, the ``requirements`` (distribution → version) of what it
    imports, and ``names``: ``id(transform)`` → the expression for that transform in ``source``."""

    source: str
    requirements: dict[str, str]
    names: dict[int, str] = field(default_factory=dict)


def _scopes(transforms: Sequence[Transform]) -> list[dict[str, Any]]:
    """The user's global namespaces the transforms were created in (for variable names)."""
    scopes: list[dict[str, Any]] = []
    seen: set[int] = set()
    for t in transforms:
        candidates = [t.__dict__.get("_pd_globals")]
        if isinstance(t, FunctionTransform):
            candidates.append(getattr(t.function, "__globals__", None))
        for scope in candidates:
            if isinstance(scope, dict) and id(scope) not in seen:
                seen.add(id(scope))
                scopes.append(scope)
    main = sys.modules.get("__main__")
    if main is not None and id(vars(main)) not in seen:
        scopes.append(vars(main))
    return scopes


def _occurrences(pipeline: Transform) -> dict[int, int]:
    counts: dict[int, int] = {}
    stack = [pipeline]
    while stack:
        t = stack.pop()
        counts[id(t)] = counts.get(id(t), 0) + 1
        if counts[id(t)] == 1:
            stack.extend(t._pd_children())
    return counts


def hooked_transforms(pipeline: Transform, hook: str) -> list[Transform]:
    """Transforms of ``pipeline`` with a ``pre_save``/``post_load`` method, in a stable order; a
    transform's index in this list is the ``i`` its hooks get."""
    return [
        t
        for t in pipeline.pd_iter_transforms()
        if callable(getattr(t, "pre_save", None)) or callable(getattr(t, "post_load", None))
    ]


def _imports(statements: set[str]) -> list[str]:
    plain = sorted(s for s in statements if s.startswith("import "))
    merged: dict[str, list[str]] = {}
    for statement in statements:
        if statement.startswith("from "):
            module, _, names = statement[5:].partition(" import ")
            merged.setdefault(module, []).append(names)
    froms = [f"from {m} import {', '.join(sorted(n))}" for m, n in sorted(merged.items())]
    return plain + froms


def _assemble(header: str, module: GeneratedModule, tail: list[str]) -> str:
    text = header + "\nfrom __future__ import annotations\n"
    imports = _imports(module.imports)
    if imports:
        text += "\n" + "\n".join(imports) + "\n"
    previous_block = True
    for definition in [*module.definitions, "\n".join(tail)]:
        block = (
            definition.lstrip().startswith(("def ", "class ", "@", "async def "))
            or "\n" in definition.strip()
        )
        separator = "\n\n" if block or previous_block else ""
        text += separator + definition.rstrip() + "\n"
        previous_block = block
    return text


def _check(text: str, filename: str) -> None:
    try:
        compile(text, filename, "exec")
    except SyntaxError as exc:  # a bug in padlc, not in the user's code
        raise SaveError(
            f"padlc generated invalid Python for {filename} ({exc}); please report this with the "
            f"pipeline. Generated source:\n{text}"
        ) from exc


def _save_weights(layers: Sequence[torch.nn.Module], path: Path) -> bool:
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    storages: set[int] = set()
    first: dict[int, str] = {}
    ties: dict[str, str] = {}  # weight key -> the key of the same nn.Parameter seen first
    for i, layer in enumerate(layers):
        for name, parameter in layer.named_parameters(remove_duplicate=False):
            key = f"{i}.{name}"
            if id(parameter) in first:
                ties[key] = first[id(parameter)]
            else:
                first[id(parameter)] = key
    for i, layer in enumerate(layers):
        for key, tensor in layer.state_dict().items():
            tensor = tensor.detach().cpu()
            pointer = tensor.untyped_storage().data_ptr() if tensor.numel() else 0
            if pointer in storages or not tensor.is_contiguous():
                tensor = tensor.contiguous().clone()  # safetensors refuses shared storage
            elif pointer:
                storages.add(pointer)
            tensors[f"{i}.{key}"] = tensor
    if not tensors:
        return False
    metadata = {"format": "pt"}
    if ties:
        metadata[TIES_KEY] = json.dumps(ties, sort_keys=True)
    save_file(tensors, str(path), metadata=metadata)
    return True


#: ``pd_save_options`` padlc understands: PADL's option to leave the layers' weights out.
SAVE_OPTIONS = {"torch.nn.Module": ("save", "no-save")}


def _saves_weights(pipeline: Transform) -> bool:
    """Whether the pipeline's ``pd_save_options`` (PADL's, on the saved transform) let the layers'
    weights be saved; options padlc does not know are refused rather than ignored."""
    options = getattr(pipeline, "pd_save_options", None)
    if options is None:
        return True
    known = ", ".join(f"{k!r}: {' or '.join(map(repr, v))}" for k, v in SAVE_OPTIONS.items())
    if not isinstance(options, dict) or any(
        key not in SAVE_OPTIONS or options[key] not in SAVE_OPTIONS[key] for key in options
    ):
        raise SaveError(
            f"`{pipeline._pd_short_repr()}` has pd_save_options={options!r}; padlc understands "
            f"{{{known}}} "
            "({'torch.nn.Module': 'no-save'} saves no weights: loading keeps the layers as the "
            "saved code builds them). For other ways of saving an object, give its class "
            "`pre_save(self, path, i)` and `post_load(self, path, i)` methods."
        )
    return options.get("torch.nn.Module", "save") != "no-save"


def capture_pipeline(
    pipeline: Transform, root: Path, shared: SharedData | None = None
) -> CapturedCode:
    """Write the lineage module ``root/pipeline.py``, ``root/weights.safetensors`` and the data
    files under ``root/data``; the module ends with ``_pd_main = <the pipeline>``. ``shared``
    (a build's) stores data files identical to ones written before in the artifact once."""
    root = Path(root)
    transforms = list(pipeline.pd_iter_transforms())
    renderer = Renderer(root, plain=False, data_dir="data", scopes=_scopes(transforms))
    module = renderer.module
    module.shared = shared
    module.varnames.pop(id(pipeline), None)
    module.transforms = transforms
    singletons = (Identity, Batchify, Unbatchify)
    module.hoist = {key for key, n in _occurrences(pipeline).items() if n > 1} - {
        id(t) for t in transforms if isinstance(t, singletons)
    }
    main = _main_expression(renderer, pipeline)
    layers = list(pipeline.pd_layers)
    # Layers reached only through values (a global a function reads); a submodule of a pipeline
    # layer (the `nn.Linear` given to `transform(nn.Sequential)(...)`) has its weights saved with it.
    inside = {id(module) for layer in layers for module in layer.modules()}
    extras = []
    for layer in module.layers:
        if id(layer) not in inside:
            extras.append(layer)
            inside.update(id(module) for module in layer.modules())
    tail = [main]
    if extras:
        missing = [layer for layer in extras if module.name_of(layer) is None]
        if missing:
            raise SaveError(
                f"Cannot save the layer {type(missing[0]).__name__}: it is not part of the pipeline's "
                "layers and has no name. Bind it to a module-level variable."
            )
        tail.append(f"_pd_extra_layers = [{', '.join(_names(module, extras))}]")
    if not _saves_weights(pipeline):
        # load() refuses layers with state but no weights file, unless the module says why
        tail.append(f"{WEIGHTS_LEFT_OUT} = True  # pd_save_options: the layers are as built here")
    elif _save_weights(layers + extras, root / WEIGHTS_FILE):
        module.import_modules.add("safetensors")
        if shared is not None:  # padlc.load reads it from here: it is kept, others may share it
            shared.keep(root, WEIGHTS_FILE)
    for i, t in enumerate(hooked_transforms(pipeline, "pre_save")):
        hook = getattr(t, "pre_save", None)
        if callable(hook):
            hook(root, i)
    import padlc

    header = (
        f'"""Lineage of a padlc pipeline: the code and values that rebuild it.\n\n'
        f"Generated by padlc {padlc.__version__}; load the directory with `padlc.load(path)`.\n"
        f'"""\n'
    )
    text = _assemble(header, module, tail)
    _check(text, MODULE_FILE)
    (root / MODULE_FILE).write_text(text, encoding="utf-8")
    names = {id(t): name for t in transforms if (name := module.name_of(t)) is not None}
    names[id(pipeline)] = "_pd_main"
    return CapturedCode(text, installed.distribution_pins(module.import_modules), names)


def _main_expression(renderer: Renderer, pipeline: Transform) -> str:
    if (
        isinstance(pipeline, Compose)
        and "_pd_name" not in pipeline.__dict__
        and not pipeline._pd_grouped
    ):
        steps = [renderer.transforms.operand(c, SHIFT)[0] for c in pipeline._pd_transforms]
        one_line = "_pd_main = " + " >> ".join(steps)
        if len(one_line) <= LINE_WIDTH and "\n" not in one_line:
            return one_line
        body = "\n    >> ".join(s.replace("\n", "\n    ") for s in steps)
        return f"_pd_main = (\n    {body}\n)"
    text, _ = renderer.transforms.operand(pipeline, ATOM)
    return f"_pd_main = {text}"


def capture_plain(
    leaves: Sequence[Transform], root: Path, module_name: str, shared: SharedData | None = None
) -> CapturedCode:
    """Plain Python for a build's stage module: the leaves' code without padlc (functions and
    classes undecorated, instances built from the user's classes), data under
    ``root/data/<module_name>/`` and the layers' weights loaded through ``padl_runtime``.

    The source expects to live directly in ``root`` (data paths are relative to ``__file__``).
    ``names[id(leaf)]`` is an expression for a plain callable applied to the leaf's input
    (``prepare``, ``lookup``, ``np.cos``); padlc built-ins (``same``, ``identity``, markers) are
    skipped. ``shared`` (a build's) stores data files identical to ones written before in the
    artifact once.
    """
    root = Path(root)
    data_dir = f"data/{module_name}"
    renderer = Renderer(root, plain=True, data_dir=data_dir, scopes=_scopes(leaves))
    module = renderer.module
    module.shared = shared
    names: dict[int, str] = {}
    hooked: list[str] = []
    for leaf in leaves:
        if isinstance(leaf, Identity | Batchify | Unbatchify | Same) or id(leaf) in names:
            continue
        hint = module.varnames.get(id(leaf)) or default_hint(leaf)
        with module.within(repr(leaf)):
            expr, _ = renderer.transforms.expression(leaf)
        found = module.name_of(leaf)
        if found is not None:
            expr = found
        elif not _is_reference(expr, module):
            bound = module.claim(hint, leaf)
            module.define(f"{bound} = {expr}")
            expr = bound
        names[id(leaf)] = expr
        if callable(getattr(leaf, "pre_save", None)) or callable(getattr(leaf, "post_load", None)):
            hooked.append(expr)
            hook = getattr(leaf, "pre_save", None)
            if callable(hook):
                (root / data_dir).mkdir(parents=True, exist_ok=True)
                hook(root / data_dir, len(hooked) - 1)
    tail: list[str] = []
    layers = module.layers
    if layers:
        unnamed = [layer for layer in layers if module.name_of(layer) is None]
        if unnamed:
            raise SaveError(
                f"Cannot save the layer {type(unnamed[0]).__name__}: bind it to a variable."
            )
        (root / data_dir).mkdir(parents=True, exist_ok=True)
        if _save_weights(layers, root / data_dir / WEIGHTS_FILE):
            module.import_modules.add("safetensors")
            load_weights = renderer.imports.runtime("load_weights")
            listed = ", ".join(_names(module, layers))
            weights = f"{data_dir}/{WEIGHTS_FILE}"
            if shared is not None:
                weights = shared.share(root, weights)
            tail.append(f"{load_weights}(__file__, {weights!r}, [{listed}])")
    for i, expr in enumerate(hooked):
        verified = renderer.imports.runtime("verified")
        tail.append(
            f"if hasattr({expr}, 'post_load'):\n"
            f"    {expr}.post_load({verified}(__file__, {data_dir!r}, directory=True), {i})"
        )
    header = f'"""Plain code of the transforms of a padlc pipeline ({module_name})."""\n'
    text = _assemble(header, module, tail)
    _check(text, f"{module_name}.py")
    return CapturedCode(text, installed.distribution_pins(module.import_modules), names)


def _names(module: GeneratedModule, objects: Sequence[Any]) -> list[str]:
    return [name for obj in objects if (name := module.name_of(obj)) is not None]


def _is_reference(expr: str, module: GeneratedModule) -> bool:
    """A name or dotted attribute of an imported module (``prepare``, ``np.cos``)."""
    head = expr.split(".")[0]
    return all(part.isidentifier() for part in expr.split(".")) and (
        head in module.names or head in vars(builtins)
    )
