"""Composite transforms: ``>>`` compose, ``+`` rollout, ``/`` parallel, ``~`` map, and ``group``."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from padl_runtime.outputs import output_tuple
from padlc.language.base import CallableTransform, Transform
from padlc.language.sites import FailureMark

__all__ = ["Compose", "Map", "Parallel", "Pipeline", "Rollout", "group"]


def _mark(exc: BaseException, child: Transform) -> None:
    # The innermost composite sees the leaf first; outer composites leave the mark alone. The apply
    # method turns the mark into a note naming the transform's position in the whole pipeline.
    if getattr(exc, "_padlc_transform", None) is None:
        # exceptions with __slots__ cannot be marked; they still propagate unchanged
        with contextlib.suppress(AttributeError):
            exc._padlc_transform = FailureMark(child)  # type: ignore[attr-defined]


class Pipeline(CallableTransform):
    """A composite of several transforms. Flattened with others of its kind unless grouped or named."""

    operator: ClassVar[str] = ""
    precedence: ClassVar[int] = 0

    def __init__(self, children: Sequence[Transform], *, grouped: bool = False) -> None:
        flat: list[Transform] = []
        for child in children:
            if type(child) is type(self) and not child._pd_is_grouped():
                flat.extend(child._pd_transforms)  # type: ignore[attr-defined]
            else:
                flat.append(child)
        self._pd_transforms: tuple[Transform, ...] = tuple(flat)
        self._pd_grouped = grouped
        self._pd_needs_mode_value = any(c._pd_needs_mode() for c in flat)
        self._pd_fields: tuple[str, ...] | None = None

    def _pd_is_grouped(self) -> bool:
        return self._pd_grouped or self._pd_name is not None

    def _pd_children(self) -> tuple[Transform, ...]:
        return self._pd_transforms

    def _pd_needs_mode(self) -> bool:
        return self._pd_needs_mode_value

    def _pd_replace(self, children: Sequence[Transform]) -> Pipeline:
        """The same kind of pipeline over other children (device kept)."""
        new = type(self)(children, grouped=self._pd_grouped)
        if self._pd_device != "cpu":
            new.__dict__["_pd_device"] = self._pd_device
        return new

    def grouped(self) -> Pipeline:
        """A copy that is not flattened into an enclosing pipeline of the same kind."""
        return type(self)(self._pd_transforms, grouped=True)

    def __len__(self) -> int:
        return len(self._pd_transforms)

    def __getitem__(self, key: int | slice | str) -> Transform:
        if isinstance(key, bool):
            raise TypeError(
                f"Pipeline indices must be int, slice or str, not {type(key).__name__}."
            )
        if isinstance(key, int):
            count = len(self._pd_transforms)
            if not -count <= key < count:
                raise IndexError(
                    f"Step {key} is out of range: `{self._pd_short_repr()}` has {count} steps "
                    f"(0 to {count - 1}, or -{count} to -1 from the end)."
                )
            return self._pd_transforms[key]
        if isinstance(key, slice):
            return self._pd_replace(self._pd_transforms[key])
        if isinstance(key, str):
            for t in self.pd_iter_transforms():
                if t is not self and t.pd_name == key:
                    return t
            names = sorted(
                {n for t in self.pd_iter_transforms() if t is not self and (n := t.pd_name)}
            )
            raise ValueError(f"No transform named {key!r} in `{self!r}`. Names present: {names}.")
        raise TypeError(f"Pipeline indices must be int, slice or str, not {type(key).__name__}.")

    # -- output names --------------------------------------------------------------------------
    def _pd_output_type(self) -> Any:
        """The namedtuple type of a rollout's/parallel's output, fields named after the children."""
        if self._pd_fields is None:
            names = [child.pd_name for child in self._pd_transforms]
            counts: dict[str, int] = {}
            for name in names:
                if name is not None:
                    counts[name] = counts.get(name, 0) + 1
            seen: dict[str, int] = {}
            fields = []
            for i, name in enumerate(names):
                if name is None or not name.isidentifier() or name.startswith("_"):
                    fields.append(f"out_{i}")
                elif counts[name] > 1:
                    fields.append(f"{name}_{seen.get(name, 0)}")
                    seen[name] = seen.get(name, 0) + 1
                else:
                    fields.append(name)
            self._pd_fields = tuple(fields)
            self._pd_namedtuple = output_tuple(fields)
        return self._pd_namedtuple

    @property
    def pd_keys(self) -> tuple[str, ...]:
        self._pd_output_type()
        assert self._pd_fields is not None
        return self._pd_fields

    def _pd_keep_fields(self, original: Pipeline) -> Pipeline:
        """Name this pipeline's outputs as ``original``'s (a stage's part of it keeps the field
        names the whole pipeline gives, though its children are parts of the original's)."""
        self._pd_fields = original.pd_keys
        self._pd_namedtuple = original._pd_output_type()
        return self

    # -- printing ------------------------------------------------------------------------------
    def _pd_child_repr(self, child: Transform) -> str:
        text = child._pd_short_repr()
        if isinstance(child, Pipeline) and child._pd_name is None:
            if type(child) is type(self):
                return f"group({text})"
            if child.precedence <= self.precedence:
                return f"({text})"
        return text

    def _pd_short_repr(self) -> str:
        if self._pd_name is not None:
            return self._pd_name
        return f" {self.operator} ".join(self._pd_child_repr(c) for c in self._pd_transforms)


class Compose(Pipeline):
    """``a >> b >> c``: ``c(b(a(x)))``."""

    operator = ">>"
    precedence = 1

    _pd_calls: tuple[Callable[[Any], Any], ...] | None = None

    def _pd_call(self, value: Any) -> Any:
        calls = self._pd_calls
        if calls is None:
            calls = self._pd_calls = tuple(child._pd_callable() for child in self._pd_transforms)
        step = 0
        try:
            for step, call in enumerate(calls):  # noqa: B007 - `step` names the failing child
                value = call(value)
        except Exception as exc:
            _mark(exc, self._pd_transforms[step])
            raise
        return value


class Rollout(Pipeline):
    """``a + b``: the same input to each, a namedtuple ``(a(x), b(x))`` out."""

    operator = "+"
    precedence = 2

    def _pd_call(self, value: Any) -> Any:
        out = []
        for child in self._pd_transforms:
            try:
                out.append(child._pd_call(value))
            except Exception as exc:
                _mark(exc, child)
                raise
        return self._pd_output_type()(*out)


class Parallel(Pipeline):
    """``a / b``: a tuple/list ``(x0, x1)`` in, a namedtuple ``(a(x0), b(x1))`` out."""

    operator = "/"
    precedence = 3

    def _pd_call(self, value: Any) -> Any:
        children = self._pd_transforms
        if not isinstance(value, tuple | list) or len(value) != len(children):
            got = f"a {type(value).__name__}" + (
                f" of length {len(value)}" if isinstance(value, tuple | list) else ""
            )
            raise TypeError(
                f"`{self!r}` takes a tuple or list of {len(children)} values (one per branch), "
                f"got {got}."
            )
        out = []
        for child, item in zip(children, value):
            try:
                out.append(child._pd_call(item))
            except Exception as exc:
                _mark(exc, child)
                raise
        return self._pd_output_type()(*out)


class Map(CallableTransform):
    """``~t``: ``t`` applied to each element of a sequence; a tuple out."""

    precedence = 4

    def __init__(self, child: Transform) -> None:
        self._pd_transform = child

    def _pd_children(self) -> tuple[Transform, ...]:
        return (self._pd_transform,)

    def _pd_needs_mode(self) -> bool:
        return self._pd_transform._pd_needs_mode()

    def _pd_call(self, value: Any) -> Any:
        child = self._pd_transform
        try:
            return tuple([child._pd_call(item) for item in value])
        except Exception as exc:
            _mark(exc, child)
            raise

    def _pd_short_repr(self) -> str:
        if self._pd_name is not None:
            return self._pd_name
        inner = self._pd_transform._pd_short_repr()
        if isinstance(self._pd_transform, Pipeline) and self._pd_transform._pd_name is None:
            inner = f"({inner})"
        return f"~{inner}"


def group(pipeline: Transform) -> Transform:
    """Keep ``pipeline`` as one unit inside a pipeline of the same kind: ``a + group(b + c)`` has two
    branches, the second of which is a rollout."""
    if isinstance(pipeline, Pipeline):
        grouped = pipeline.grouped()
        grouped.__dict__["_pd_globals"] = sys._getframe(1).f_globals  # named by its variable
        return grouped
    return pipeline
