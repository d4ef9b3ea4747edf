"""Structural rebuild: a torch module built again from what it holds, without its source.

Containers (``nn.Sequential``, ``nn.ModuleList``, ``nn.ModuleDict``, nested) are rebuilt from their
children, and a layer from the attributes named like its constructor's parameters
(``nn.Linear(in_features=16, out_features=32, bias=True)``). :func:`rebuild` returns a
:class:`Recipe` (the call that builds the module again, and the module it built, to verify) or why it
cannot.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch

from padlc.language.atomic import user_class_of

__all__ = ["CONTAINERS", "Recipe", "rebuild", "shapes"]

CONTAINERS = (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict)


@dataclass(frozen=True)
class Recipe:
    """``cls(*args, **kwargs)`` builds ``module`` again (``built`` is one built here); ``args`` may
    hold recipes of children, in a list, a dict or an ``OrderedDict``."""

    cls: type
    module: torch.nn.Module = field(repr=False)
    built: torch.nn.Module = field(repr=False)
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def shapes(module: torch.nn.Module) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    """The state dict's keys, shapes and dtypes."""
    return [(k, tuple(v.shape), v.dtype) for k, v in module.state_dict().items()]


def rebuild(module: torch.nn.Module) -> Recipe | str:
    """How to build ``module`` again from its children or attributes, or why it cannot be."""
    cls = user_class_of(type(module))
    if cls in CONTAINERS:
        return _container(module, cls)
    if _is_pretrained_model(cls) and hasattr(module, "config"):
        return _from_config(module, cls)
    return _from_attributes(module, cls)


def _is_pretrained_model(cls: type) -> bool:
    return any(
        (k.__module__, k.__qualname__) == ("transformers.modeling_utils", "PreTrainedModel")
        for k in cls.__mro__
    )


def _from_config(module: torch.nn.Module, cls: type) -> Recipe | str:
    """A transformers model is ``cls(config)`` (its config is saved by its serializer)."""
    try:
        built = cls(module.config)
    except Exception as exc:
        return f"building it from its config failed ({type(exc).__name__}: {exc})"
    if shapes(built) != shapes(module):
        return "built from its config its weights have other names, shapes or dtypes"
    return Recipe(cls, module, built, (), {"config": module.config})


def _container(module: torch.nn.Module, cls: type) -> Recipe | str:
    children: dict[str, Recipe] = {}
    for name, child in module.named_children():
        recipe = rebuild(child)
        if isinstance(recipe, str):
            return f"its submodule {name!r} ({type(child).__name__}): {recipe}"
        children[name] = recipe
    built_children = {k: r.built for k, r in children.items()}
    numbered = list(children) == [str(i) for i in range(len(children))]
    args: tuple[Any, ...]
    built: torch.nn.Module
    if cls is torch.nn.Sequential:
        if numbered:
            args, built = tuple(children.values()), cls(*built_children.values())
        else:
            args = (OrderedDict(children),)
            built = cls(OrderedDict(built_children))
    elif cls is torch.nn.ModuleList:
        if not numbered:  # pragma: no cover - a ModuleList numbers its children
            return "its children are not numbered"
        args, built = (list(children.values()),), cls(list(built_children.values()))
    else:
        args, built = (dict(children),), cls(built_children)
    return Recipe(cls, module, built, args)


def _from_attributes(module: torch.nn.Module, cls: type) -> Recipe | str:
    """``cls(name=module.name, ...)`` for each parameter of ``cls.__init__``, checked by building
    it: the same ``repr`` and the same state dict keys, shapes and dtypes."""
    try:
        parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]  # type: ignore[misc]
    except (TypeError, ValueError):
        return "its __init__ signature is unknown"
    kwargs: dict[str, Any] = {}
    for p in parameters:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name in vars(module) or hasattr(module, p.name):
            current = getattr(module, p.name)
            if isinstance(p.default, bool) and (
                current is None or isinstance(current, torch.Tensor)
            ):
                current = current is not None  # `bias=True` is stored as the bias tensor
            kwargs[p.name] = current
        elif p.default is p.empty:
            return f"its constructor argument {p.name!r} is not stored as an attribute"
    try:
        built = cls(**kwargs)
    except Exception as exc:
        return f"building it from its attributes failed ({type(exc).__name__}: {exc})"
    if repr(built) != repr(module):
        return f"built from its attributes it prints as {built!r}"
    if shapes(built) != shapes(module):
        return "built from its attributes its weights have other names, shapes or dtypes"
    return Recipe(cls, module, built, (), kwargs)
