"""Serializers: how objects padlc cannot rebuild from source are saved into the artifact.

A tokenizer, a vocabulary object, a fitted scaler of another library: padlc cannot write code that
builds them again, and will not pickle them. A serializer says how: ``save(obj, directory)`` writes
the object's files into a fresh directory of the artifact, and ``load`` reads them back when the
artifact is loaded. ``load`` is either a function (called with the directory, a
:class:`pathlib.Path`) that the saved code can import or copy (a function of an installed package
or of the user's project), or the name of a class method of the object's class
(``"from_pretrained"``).

>>> import json
>>> import padlc
>>> class Vocabulary:
...     def __init__(self, words):
...         self.index = {w: i for i, w in enumerate(words)}
...     def save(self, directory):
...         (directory / "words.json").write_text(json.dumps(list(self.index)))
...     @classmethod
...     def load(cls, directory):
...         return cls(json.loads((directory / "words.json").read_text()))
>>> padlc.serializer(Vocabulary, save=Vocabulary.save, load="load")

The registry is configuration of the process, like :mod:`copyreg`: register at import time, next
to the class. transformers' tokenizers, processors and configs are registered already
(``save_pretrained`` / ``from_pretrained``), without importing transformers.
"""

from __future__ import annotations

import filecmp
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Serializer", "find", "same_saved_state", "serializer"]


@dataclass(frozen=True)
class Serializer:
    """``save(obj, directory)`` writes ``obj``; ``load(directory)`` (or the class method named
    ``load``) reads it back."""

    save: Callable[[Any, Path], Any]
    load: Callable[[Path], Any] | str


def _save_pretrained(obj: Any, directory: Path) -> None:
    obj.save_pretrained(str(directory))


_PRETRAINED = Serializer(save=_save_pretrained, load="from_pretrained")

#: Entries for classes of libraries padlc does not import: (module, class name) -> serializer.
#: An object can only be an instance of such a class once its module is imported.
_LIBRARIES: dict[tuple[str, str], Serializer] = {
    ("transformers.tokenization_utils_base", "PreTrainedTokenizerBase"): _PRETRAINED,
    ("transformers.configuration_utils", "PreTrainedConfig"): _PRETRAINED,
    ("transformers.configuration_utils", "PretrainedConfig"): _PRETRAINED,  # transformers < 5
    ("transformers.processing_utils", "ProcessorMixin"): _PRETRAINED,
    ("transformers.image_processing_base", "ImageProcessingMixin"): _PRETRAINED,
    ("transformers.feature_extraction_utils", "FeatureExtractionMixin"): _PRETRAINED,
}

_REGISTERED: dict[type, Serializer] = {}


def serializer(
    cls: type, *, save: Callable[[Any, Path], Any], load: Callable[[Path], Any] | str
) -> None:
    """Save instances of ``cls`` (and of its subclasses) with ``save`` and load them with ``load``.

    ``save(obj, directory)`` writes into ``directory`` (a fresh, empty :class:`pathlib.Path` in the
    artifact). ``load`` is called with that directory when the artifact is loaded: a function the
    saved code can import (an installed package's) or copy (one of your project), or the name of a
    class method of the object's class. A later registration for the same class replaces it.
    """
    if not isinstance(cls, type):
        raise TypeError(f"padlc.serializer needs a class; got {cls!r}.")
    if not callable(save):
        raise TypeError(f"save must be callable (obj, directory); got {save!r}.")
    if isinstance(load, str):
        if not callable(getattr(cls, load, None)):
            raise TypeError(
                f"load={load!r} names no method of {cls.__name__}: give a class method's name "
                "or a function called with the directory."
            )
    elif not callable(load):
        raise TypeError(f"load must be callable (directory) or a method name; got {load!r}.")
    _REGISTERED[cls] = Serializer(save=save, load=load)


def find(obj: Any) -> Serializer | None:
    """The serializer of ``obj``'s class or of its nearest base class that has one."""
    for klass in type(obj).__mro__:
        found = _REGISTERED.get(klass)
        if found is not None:
            return found
        found = _LIBRARIES.get((klass.__module__, klass.__qualname__))
        if found is not None:
            return found
    return None


def same_saved_state(a: Any, b: Any, entry: Serializer) -> bool:
    """Whether ``a`` and ``b`` save to the same files (the same names and bytes)."""
    with tempfile.TemporaryDirectory(prefix="padlc-compare-") as scratch:
        first, second = Path(scratch, "a"), Path(scratch, "b")
        first.mkdir()
        second.mkdir()
        try:
            entry.save(a, first)
            entry.save(b, second)
        except Exception:
            return False
        return _same_tree(first, second)


def _same_tree(first: Path, second: Path) -> bool:
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    if files != sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file()):
        return False
    return all(filecmp.cmp(first / f, second / f, shallow=False) for f in files)
