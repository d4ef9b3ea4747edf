"""Keyword arguments checked with a suggestion: ``eval_apply(batchsize=3)`` names ``batch_size``.

A function taking real keyword parameters is typed (editors and type checkers see its options),
but Python's own error for a misspelt one, ``got an unexpected keyword argument 'batchsize'``,
names no alternative. :func:`suggest_keywords` keeps the function's signature for type checkers
and turns that mistake into a ``TypeError`` naming the closest option and listing them all.

>>> @suggest_keywords
... def apply(items, *, batch_size=64, num_workers=0):
...     return batch_size
>>> apply([], batchsize=3)
Traceback (most recent call last):
  ...
TypeError: apply() got an unexpected keyword argument 'batchsize' (did you mean 'batch_size'?); its options are batch_size, num_workers.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ParamSpec, TypeVar, overload

__all__ = ["Hint", "suggest_keywords", "unknown_keywords"]

_P = ParamSpec("_P")
_R = TypeVar("_R")
#: What follows the options in the message: a sentence, or a sentence per keyword.
Hint = str | Mapping[str, str]


def unknown_keywords(
    function: str, unknown: Iterable[str], known: Iterable[str], hint: Hint = ""
) -> TypeError:
    """The ``TypeError`` for keyword arguments ``function`` does not take, each with the closest
    known name when there is one; then ``hint``: a sentence, or one per keyword it names."""
    options = sorted(known, key=lambda name: (name.startswith("_"), name))
    public = [name for name in options if not name.startswith("_")]
    parts = []
    unknown = sorted(unknown)
    if not isinstance(hint, str):
        hint = " ".join(hint[name] for name in unknown if name in hint)
    for name in unknown:
        close = difflib.get_close_matches(name, public, n=1)
        parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    plural = "s" if len(parts) > 1 else ""
    return TypeError(
        f"{function}() got an unexpected keyword argument{plural} {', '.join(parts)}; its options "
        f"are {', '.join(public)}." + (f" {hint}" if hint else "")
    )


@overload
def suggest_keywords(function: Callable[_P, _R], /) -> Callable[_P, _R]: ...
@overload
def suggest_keywords(*, hint: Hint) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]: ...
def suggest_keywords(function: Any = None, /, *, hint: Hint = "") -> Any:
    """``function``, whose unknown keyword arguments raise :func:`unknown_keywords`'s error
    (one set lookup per call; the signature type checkers see is the function's own).
    ``@suggest_keywords(hint=...)`` ends the message with ``hint`` (what to do instead, when the
    mistake is a common one), or by the hint of each keyword it names
    (``hint={"post_workers": "Outputs with gradients cannot cross processes."}``)."""
    if function is None:
        return lambda f: _checked(f, hint)
    return _checked(function, hint)


def _checked(function: Callable[_P, _R], hint: Hint) -> Callable[_P, _R]:
    parameters = inspect.signature(function).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        raise TypeError(f"{function.__qualname__} takes **kwargs: every keyword is known to it")
    known = frozenset(
        p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    )
    # the options named in the message: the keyword-only ones, when there are any
    options = [p.name for p in parameters if p.kind is p.KEYWORD_ONLY] or sorted(known - {"self"})
    name = function.__name__

    @functools.wraps(function)
    def checked(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        if not known.issuperset(kwargs):
            raise unknown_keywords(name, kwargs.keys() - known, options, hint) from None
        return function(*args, **kwargs)

    return checked
