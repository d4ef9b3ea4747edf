"""Rendering values: literals inline, larger data as data files (JSON, ``.npy``, safetensors).

Values are saved as they are at save time; numpy arrays holding Python objects and objects padlc
cannot rebuild raise :class:`padlc.SaveError` saying what to do instead.
"""

from __future__ import annotations

import ast
import enum
import functools
import io
import json
import operator
import os
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from padlc.capture import markers, serializers, source
from padlc.capture.definitions import is_user_code
from padlc.errors import SaveError
from padlc.language.atomic import ModuleProxy
from padlc.language.base import Transform

if TYPE_CHECKING:
    from padlc.capture.render import Renderer

__all__ = ["SMALL_ELEMENTS", "SMALL_REPR", "Values", "is_literal"]

SMALL_ELEMENTS = 100

SMALL_REPR = 1000

#: C callables rebuilt from their ``__reduce__`` (the class and its arguments).
_REDUCIBLE = (operator.itemgetter, operator.attrgetter, operator.methodcaller)

_DESCRIPTORS = (
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.ClassMethodDescriptorType,
)

_CALLABLE_TYPES = (
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    *_DESCRIPTORS,
)

_UNCAPTURABLE_HINTS = (
    (io.IOBase, "an open file: open it inside the transform, or load its content into a value"),
    (
        types.GeneratorType,
        "a generator: make the data a list, or create the generator inside the function",
    ),
)


def is_literal(value: Any) -> bool:
    """Whether ``repr(value)`` is a Python literal that evaluates to an equal value."""
    try:
        return bool(ast.literal_eval(repr(value)) == value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _count(value: Any) -> int:
    if isinstance(value, dict):
        return len(value) + sum(_count(k) + _count(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return len(value) + sum(_count(v) for v in value)
    return 0


def _exact_json(value: Any) -> bool:
    try:
        return bool(json.loads(json.dumps(value)) == value) and _json_types(value)
    except (TypeError, ValueError):
        return False


def _json_types(value: Any) -> bool:
    if isinstance(value, bool) or value is None or type(value) in (int, float, str):
        return True
    if isinstance(value, list) and not isinstance(value, tuple):
        return all(_json_types(v) for v in value)
    if isinstance(value, dict):
        return all(type(k) is str and _json_types(v) for k, v in value.items())
    return False


class Values:
    """Data: scalars, containers, numpy arrays, tensors, enums, partials, bound methods."""

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer
        self.module = renderer.module
        self.imports = renderer.imports

    def value(self, obj: Any, hint: str = "value") -> str:
        """An expression that rebuilds ``obj`` with its current value."""
        name = markers.param_name(obj)
        if name is not None:
            found = self.module.name_of(obj)
            if found is not None:
                return found
            default = self.value(markers.plain(obj), hint)
            if self.module.plain:
                return default
            description, use_default = markers.param_options(obj)
            args = [repr(name), default]
            if description is not None:
                args.append(f"description={description!r}")
            if not use_default:
                args.append("use_default=False")
            return f"{self.imports.padlc_name('param')}({', '.join(args)})"
        value_serializer = markers.serializer_of(obj)
        if value_serializer is not None:
            found = self.module.name_of(obj)
            if found is not None:
                return found
            return self._value_serialized(
                obj, value_serializer, self.module.varnames.get(id(obj), hint)
            )
        kind = type(obj)
        if obj is None or kind in (bool, int, str, bytes, complex):
            return repr(obj)
        if kind is float:
            return (
                repr(obj)
                if obj == obj and obj not in (float("inf"), float("-inf"))
                else f"float({str(obj)!r})"
            )
        found = self.module.name_of(obj)
        if found is not None:
            return found
        varname = self.module.varnames.get(id(obj))
        if (
            varname is not None
            and id(obj) not in self.module.binding
            and not isinstance(obj, Transform)
        ):
            return self.renderer.definitions.bind_global(
                varname, obj
            )  # the user's variable: `Lookup(LABELS)`
        if markers.is_forced(obj):
            return self._data_file(markers.plain(obj), hint, forced=True)
        if kind in (list, tuple, dict, set, frozenset):
            return self._container(obj, hint)
        if isinstance(obj, types.ModuleType):
            return self.imports.module_alias(obj)
        if isinstance(obj, Transform):
            return self.renderer.transforms.ref(obj, hint)
        if isinstance(obj, ModuleProxy):
            return self.renderer.transforms.module_proxy(obj, hint)
        if isinstance(obj, torch.Tensor):
            return self._tensor(obj, hint)
        if isinstance(obj, torch.nn.Module):
            return self.renderer.instances.layer(obj, hint)
        if isinstance(obj, torch.dtype | torch.device):
            return (
                f"{self.imports.module_alias(torch)}.{repr(obj).removeprefix('torch.')}"
                if isinstance(obj, torch.dtype)
                else f"{self.imports.module_alias(torch)}.device({str(obj)!r})"
            )
        if kind.__module__ == "numpy":
            return self._numpy(obj, hint)
        if isinstance(obj, enum.Enum):
            return f"{self.value(type(obj))}.{obj.name}"
        if isinstance(obj, functools.partial):
            args = [self.value(obj.func)] + [self.value(a) for a in obj.args]
            args += [f"{k}={self.value(v, k)}" for k, v in obj.keywords.items()]
            return f"{self.imports.module_alias(functools)}.partial({', '.join(args)})"
        if isinstance(obj, types.MethodType) and not isinstance(
            obj.__self__, type | types.ModuleType
        ):
            return f"{self.value(obj.__self__)}.{obj.__func__.__name__}"
        if isinstance(obj, types.BuiltinMethodType) and not isinstance(
            obj.__self__, type | types.ModuleType | None
        ):
            return f"{self.value(obj.__self__)}.{obj.__name__}"  # `TABLE.get`
        if isinstance(obj, _REDUCIBLE):
            return self._reduced(obj, hint)
        if isinstance(obj, functools._lru_cache_wrapper):
            expr = self._cached_function(obj, hint)
            if expr is not None:
                return expr
        if (
            isinstance(
                obj,
                _CALLABLE_TYPES,
            )
            or kind.__name__ == "ufunc"
        ):
            if is_user_code(obj):
                return self.renderer.definitions.user_callable(obj, hint)
            expr = self.imports.object_expr(obj)
            if expr is not None:
                return expr
        entry = serializers.find(obj)
        if entry is not None:
            return self.serialized(obj, entry, hint)
        expr = self.renderer.instances.object(obj, hint)  # `config = BertConfig(...)`
        if expr is not None:
            return expr
        raise self._uncapturable(obj, hint)

    def serialized(self, obj: Any, entry: serializers.Serializer, hint: str) -> str:
        """``load(directory)`` of the files a registered serializer saved (``padlc.serializer``)."""
        relative = self._data_path(hint, "")
        directory = self.module.root / relative
        directory.mkdir()
        try:
            entry.save(obj, directory)
        except Exception as exc:
            raise self.module.error(
                f"Cannot save {_short_repr(obj)} (a {type(obj).__name__}): its serializer's save "
                f"failed ({type(exc).__name__}: {exc})."
            ) from exc
        if isinstance(entry.load, str):
            loader = f"{self.value(type(obj))}.{entry.load}"
        else:
            loader = self.value(entry.load, "load")
        return f"{loader}({self.imports.runtime('verified')}(__file__, {relative!r}))"

    def _value_serialized(self, obj: Any, spec: markers.ValueSerializer, hint: str) -> str:
        """``value(x, (save, load, suffix))``: ``save`` writes the value into the data directory,
        the generated code calls ``load`` on the path(s) it wrote."""
        relative = self._data_path(hint, spec.suffix)
        target = self.module.root / relative
        save = _qualname(spec.save)
        try:
            written = spec.save(markers.plain(obj), target)
        except Exception as exc:
            raise self.module.error(
                f"The save function {save} given to value() failed: {type(exc).__name__}: {exc}."
            ) from exc
        files: str | list[str]
        if written is None:
            if not spec.suffix:
                raise self.module.error(
                    f"The save function {save} given to value() without a file suffix returned "
                    "nothing: return the file name (or list of names) it wrote, or pass a "
                    "suffix: value(x, (save, load, '.npy'))."
                )
            if not target.is_file():
                raise self.module.error(
                    f"The save function {save} given to value() did not write the file "
                    f"{relative!r} it was given (it must write `path` itself, not `path` with "
                    "another suffix)."
                )
            files = self._stored(relative)
        elif isinstance(written, str | os.PathLike):
            files = self._written(written, save)
        elif isinstance(written, list | tuple):
            files = [self._written(w, save) for w in written]
        else:
            raise self.module.error(
                f"The save function {save} given to value() returned {written!r}; it may return "
                "nothing, a file name or a list of file names."
            )
        verified = self.imports.runtime("verified")
        if isinstance(files, str):
            path = f"{verified}(__file__, {files!r})"
        else:
            path = "[" + ", ".join(f"{verified}(__file__, {f!r})" for f in files) + "]"
        expr = f"{self.value(spec.load, 'load')}({path})"
        if self.module.plain:
            return expr
        functions = [self.value(spec.save, "save"), self.value(spec.load, "load")]
        if spec.suffix:
            functions.append(repr(spec.suffix))
        return f"{self.imports.padlc_name('value')}({expr}, ({', '.join(functions)}))"

    def _written(self, written: str | os.PathLike[str], save: str) -> str:
        """A file a save function says it wrote, relative to the module's directory (it must be
        inside the artifact)."""
        root = self.module.root.resolve()
        path = Path(written)
        path = (path if path.is_absolute() else root / path).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise self.module.error(
                f"The save function {save} given to value() returned {str(written)!r}, which is "
                f"not a file it wrote in the artifact ({root}). Write into the `path` it is given "
                "(e.g. `f'{path}_0.npy'`) and return those names."
            )
        return self._stored(path.relative_to(root).as_posix())

    def _reduced(self, obj: Any, hint: str) -> str:
        """``operator.itemgetter("text")`` and its kind, from the class and arguments they reduce
        to (``methodcaller`` with keywords reduces to a ``functools.partial`` of its class)."""
        rebuild, args = obj.__reduce__()[:2]
        return f"{self.value(rebuild, hint)}({', '.join(self.value(a, hint) for a in args)})"

    def _cached_function(self, obj: Any, hint: str) -> str | None:
        """A user function under ``@functools.lru_cache`` / ``@cache``: its definition, decorators
        included, binds its name to the cached function again."""
        fn = getattr(obj, "__wrapped__", None)
        if not isinstance(fn, types.FunctionType) or not is_user_code(fn):
            return None
        node = source.function_snippet(fn).node
        if not getattr(node, "decorator_list", None):
            return None  # cached by a call, not a decorator: the definition would lose it
        name = self.renderer.definitions.user_callable(fn, hint)
        if name in self.module.names:  # the generated definition binds it to the cached function
            self.module.names.associate(name, obj)
        return name

    def _uncapturable(self, obj: Any, hint: str = "value") -> SaveError:
        kind = type(obj).__name__
        # the variable the code reads it through (`fh`), when it is one
        subject = (
            f"`{hint}` ({_short_repr(obj)})" if hint.isidentifier() and hint != "value" else None
        )
        for types_, why in _UNCAPTURABLE_HINTS:
            if isinstance(obj, types_):
                return self.module.error(f"Cannot save {subject or repr(obj)}: it is {why}.")
        return self.module.error(
            f"Cannot save {subject or _short_repr(obj)} (a {kind}): padlc saves code, data (dicts, lists, numbers, "
            "strings, numpy arrays, tensors), torch layers and instances of transform classes. "
            "Create it inside the function that uses it, wrap data in `value(...)`, make "
            f"{kind} a transform class (`@transform class {kind}` records its constructor "
            "arguments), or give it `pre_save(self, path, i)` / "
            "`post_load(self, path, i)` methods."
        )

    def _container(self, obj: Any, hint: str) -> str:
        if is_literal(obj):
            text = repr(obj)
            if _count(obj) <= SMALL_ELEMENTS and len(text) <= SMALL_REPR:
                return text
            if _exact_json(obj) or (isinstance(obj, dict) and self._pairs_json(obj)):
                return self._data_file(obj, hint, forced=False)
            return text
        kind = type(obj)
        if kind is dict:
            items = ", ".join(
                f"{self.value(k, hint)}: {self.value(v, hint)}" for k, v in obj.items()
            )
            return "{" + items + "}"
        parts = [self.value(v, hint) for v in obj]
        if kind is list:
            return "[" + ", ".join(parts) + "]"
        if kind is tuple:
            return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
        inner = "[" + ", ".join(parts) + "]"
        return f"{kind.__name__}({inner})"

    def _pairs_json(self, obj: dict[Any, Any]) -> bool:
        pairs = [[k, v] for k, v in obj.items()]
        return all(type(k) in (int, float, str, bool) or k is None for k in obj) and _exact_json(
            pairs
        )

    def _data_path(self, hint: str, suffix: str) -> str:
        """A new data file's path, relative to the module's directory (its folder made)."""
        relative = f"{self.module.data_dir}/{self.module.data_files.create(hint)}{suffix}"
        (self.module.root / relative).parent.mkdir(parents=True, exist_ok=True)
        return relative

    def _stored(self, relative: str) -> str:
        """Where the module reads the data file just written at ``relative``: there, or at an
        identical file another module of the artifact wrote (see :class:`SharedData`)."""
        return (
            relative
            if self.module.shared is None
            else self.module.shared.share(self.module.root, relative)
        )

    def _data_file(self, obj: Any, hint: str, *, forced: bool) -> str:
        if isinstance(obj, torch.Tensor):
            return self._tensor(obj, hint)
        if type(obj).__module__ == "numpy":
            return self._numpy(obj, hint)
        if _exact_json(obj):
            relative = self._data_path(hint, ".json")
            (self.module.root / relative).write_text(
                json.dumps(obj, ensure_ascii=False), encoding="utf-8"
            )
            relative = self._stored(relative)
            expr = f"{self.imports.runtime('load_json')}(__file__, {relative!r})"
        elif isinstance(obj, dict) and self._pairs_json(obj):
            relative = self._data_path(hint, ".json")
            pairs = [[k, v] for k, v in obj.items()]
            (self.module.root / relative).write_text(
                json.dumps(pairs, ensure_ascii=False), encoding="utf-8"
            )
            relative = self._stored(relative)
            expr = f"{self.imports.runtime('load_json_pairs')}(__file__, {relative!r})"
        elif isinstance(obj, tuple) and _exact_json(list(obj)):
            relative = self._data_path(hint, ".json")
            (self.module.root / relative).write_text(
                json.dumps(list(obj), ensure_ascii=False), encoding="utf-8"
            )
            relative = self._stored(relative)
            expr = f"tuple({self.imports.runtime('load_json')}(__file__, {relative!r}))"
        else:
            raise self.module.error(
                f"value() of {type(obj).__name__} {obj!r:.60} cannot be stored as JSON (keys must be "
                "str/int/float, items JSON values). Use plain lists/dicts, a numpy array or a tensor."
            )
        if forced and not self.module.plain:
            return f"{self.imports.padlc_name('value')}({expr})"
        return expr

    def _numpy(self, obj: Any, hint: str) -> str:
        import numpy as np

        if isinstance(obj, np.generic):
            return f"{self.imports.module_alias(np, 'np')}.{type(obj).__name__}({obj.item()!r})"
        if isinstance(obj, np.dtype):
            return f"{self.imports.module_alias(np, 'np')}.dtype({obj.str!r})"
        if not isinstance(obj, np.ndarray):
            expr = self.imports.object_expr(obj)  # ufuncs and other numpy callables
            if expr is None:
                raise self._uncapturable(obj, hint)
            return expr
        relative = self._data_path(hint, ".npy")
        self.module.import_modules.add("numpy")  # read by padl_runtime.values.load_npy
        try:
            np.save(self.module.root / relative, obj, allow_pickle=False)
        except ValueError as exc:
            raise self.module.error(
                f"The numpy array {hint!r} holds Python objects (dtype {obj.dtype}); it cannot be "
                "saved without pickle. Use a numeric or string dtype, or a list."
            ) from exc
        relative = self._stored(relative)
        return f"{self.imports.runtime('load_npy')}(__file__, {relative!r})"

    def _tensor(self, obj: torch.Tensor, hint: str) -> str:
        from safetensors.torch import save_file

        relative = self._data_path(hint, ".safetensors")
        self.module.import_modules.add("safetensors")
        save_file(
            {"value": obj.detach().cpu().contiguous().clone()}, str(self.module.root / relative)
        )
        relative = self._stored(relative)
        expr = f"{self.imports.runtime('load_tensor')}(__file__, {relative!r})"
        torch_name = self.imports.module_alias(torch)
        if isinstance(obj, torch.nn.Parameter):
            return f"{torch_name}.nn.Parameter({expr}, requires_grad={obj.requires_grad})"
        if obj.requires_grad:
            return f"{expr}.requires_grad_()"
        return expr


def _qualname(fn: Any) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn))
