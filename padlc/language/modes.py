"""Mode switches (``IfInMode``, ``IfTrain``, ``IfEval``, ``IfInfer``) and ``Try``."""

from __future__ import annotations

from typing import Any

from padlc.errors import ModeError
from padlc.language import context as _context
from padlc.language.base import CallableTransform, Transform, as_transform, checked_name
from padlc.language.context import MODES, Mode
from padlc.language.markers import identity

__all__ = ["IfEval", "IfInMode", "IfInfer", "IfTrain", "Try"]


class IfInMode(CallableTransform):
    """``if_`` when applied in ``target_mode``, else ``else_``.

    >>> from padlc import IfTrain, transform
    >>> noise = IfTrain(transform(lambda x: x + 0.1))   # only while training
    """

    def __init__(self, if_: Any, target_mode: Mode, else_: Any = identity) -> None:
        if target_mode not in MODES:
            raise ValueError(f"target_mode must be one of {MODES}, got {target_mode!r}.")
        self.if_ = as_transform(if_, operator="IfInMode")
        # `else_=None` is identity, as in PADL
        self.else_ = identity if else_ is None else as_transform(else_, operator="IfInMode")
        self.target_mode = target_mode

    def _pd_children(self) -> tuple[Transform, ...]:
        return (self.if_, self.else_)

    def _pd_needs_mode(self) -> bool:
        return True

    def _pd_call(self, value: Any) -> Any:
        mode = _context.current_mode()
        if mode is None:
            raise ModeError(
                f"`{self!r}` depends on the apply mode: use `.infer_apply`, `.eval_apply` or "
                "`.train_apply`."
            )
        return (self.if_ if mode == self.target_mode else self.else_)._pd_call(value)

    def _pd_replace(self, if_: Transform, else_: Transform) -> IfInMode:
        return IfInMode(if_, self.target_mode, else_)

    def _pd_short_repr(self) -> str:
        if self._pd_name is not None:
            return self._pd_name
        cls = {"train": "IfTrain", "eval": "IfEval", "infer": "IfInfer"}[self.target_mode]
        inner = self.if_._pd_short_repr()
        if self.else_ is identity:
            return f"{cls}({inner})"
        return f"{cls}({inner}, else_={self.else_._pd_short_repr()})"


def IfTrain(if_: Any, else_: Any = identity) -> IfInMode:
    """``if_`` in ``train_apply``, else ``else_``."""
    return IfInMode(if_, "train", else_)


def IfEval(if_: Any, else_: Any = identity) -> IfInMode:
    """``if_`` in ``eval_apply``, else ``else_``."""
    return IfInMode(if_, "eval", else_)


def IfInfer(if_: Any, else_: Any = identity) -> IfInMode:
    """``if_`` in ``infer_apply``, else ``else_``."""
    return IfInMode(if_, "infer", else_)


class Try(CallableTransform):
    """``try: transform except exceptions: catch_transform else: else_transform finally: finally_transform``.

    The output is ``catch_transform(x)`` when ``transform(x)`` raises one of ``exceptions``, else
    ``else_transform(transform(x))``. ``finally_transform(x)`` runs on the *input* in a real
    ``finally:``, also when the exception is not caught, so it can release what the input holds::

        read_text = open_file >> Try(read, transform(lambda f: ""), OSError, finally_transform=close)

    A ``Try`` must lie within one stage.
    """

    def __init__(
        self,
        transform: Any,
        catch_transform: Any,
        exceptions: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        else_transform: Any = identity,
        finally_transform: Any = identity,
        pd_name: str | None = None,
    ) -> None:
        self.transform = as_transform(transform, operator="Try")
        self.catch_transform = as_transform(catch_transform, operator="Try")
        self.else_transform = as_transform(else_transform, operator="Try")
        self.finally_transform = as_transform(finally_transform, operator="Try")
        self.exceptions = (
            tuple(exceptions) if isinstance(exceptions, tuple | list) else (exceptions,)
        )
        for exc in self.exceptions:
            if not (isinstance(exc, type) and issubclass(exc, BaseException)):
                raise TypeError(f"Try: exceptions must be exception classes, got {exc!r}.")
        if pd_name is not None:
            self._pd_name = checked_name(pd_name)

    def _pd_children(self) -> tuple[Transform, ...]:
        return (self.transform, self.catch_transform, self.else_transform, self.finally_transform)

    def _pd_needs_mode(self) -> bool:
        return any(c._pd_needs_mode() for c in self._pd_children())

    def _pd_call(self, value: Any) -> Any:
        try:
            output = self.transform._pd_call(value)
        except self.exceptions:
            output = self.catch_transform._pd_call(value)
        else:
            output = self.else_transform._pd_call(output)
        finally:
            self.finally_transform._pd_call(value)
        return output

    def _pd_short_repr(self) -> str:
        if self._pd_name is not None:
            return self._pd_name
        names = ", ".join(e.__name__ for e in self.exceptions)
        return (
            f"Try({self.transform._pd_short_repr()}, {self.catch_transform._pd_short_repr()}, "
            f"({names},))"
        )
