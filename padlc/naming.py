"""Names in generated code: one allocator of unique, legal Python identifiers.

The capture (the lineage and stage code), the code generator (the stage functions) and the lowering
(the forward's submodules) all name things in code they write; they share this :class:`Namespace`
(after ``torch.fx``'s ``_Namespace``) and so one set of rules:

- a hint becomes legal by dropping the characters that cannot be in an identifier at its ends and
  joining the rest with ``_`` (``same.lower()`` → ``same_lower``, ``<lambda>`` → ``lambda``);
  a hint that starts with a digit gets a leading ``_``; an empty one becomes the default;
- a name already taken, a keyword, or (when the namespace reserves them) a builtin gets the first
  free suffix: ``x``, ``x_1``, ``x_2``...

>>> names = Namespace()
>>> names.create("model"), names.create("model"), names.create("class"), names.create("0.weight")
('model', 'model_1', 'class_1', '_0_weight')
"""

from __future__ import annotations

import builtins
import keyword
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["Namespace", "legal"]

_ENDS = re.compile(r"^\W+|\W+$")
_INSIDE = re.compile(r"\W+")


def legal(hint: str, default: str = "value") -> str:
    """``hint`` made a legal identifier (not yet checked against keywords or taken names)."""
    text = _INSIDE.sub("_", _ENDS.sub("", hint)) or default
    return "_" + text if text[0].isdigit() else text


class Namespace:
    """Hands out unique, legal identifiers, and remembers the object each one names.

    ``reserved`` names are never handed out; with ``builtins=True`` neither are the names of
    builtins (generated code that calls ``tuple`` or ``isinstance`` must not shadow them), except
    for the builtin itself (``create("len", len)`` is ``len``).
    """

    def __init__(self, reserved: Iterable[str] = (), *, builtins: bool = False) -> None:
        self._taken: set[str] = set(reserved)
        self._builtins = builtins
        self._objects: dict[str, Any] = {}
        self._names: dict[int, str] = {}
        self._alive: list[Any] = []  # the objects whose ids are keys of _names stay alive

    def create(self, hint: str, obj: Any = None, *, default: str = "value") -> str:
        """A new name made from ``hint``; it names ``obj`` when one is given."""
        base = name = legal(hint, default)
        n = 1
        while name in self._taken or self._illegal(name, obj):
            name, n = f"{base}_{n}", n + 1
        self._taken.add(name)
        if obj is not None:
            self.associate(name, obj)
        return name

    def _illegal(self, name: str, obj: Any) -> bool:
        if keyword.iskeyword(name):
            return True
        return self._builtins and name in vars(builtins) and getattr(builtins, name) is not obj

    def reserve(self, name: str) -> None:
        """Take ``name`` as it is (a name the generated code binds itself)."""
        self._taken.add(name)

    def associate(self, name: str, obj: Any) -> None:
        """``name`` (already taken) now names ``obj``: ``name_of(obj)`` and ``object_of(name)``
        return them (a decorated definition binds its name to the decorator's result)."""
        self._objects[name] = obj
        self._names[id(obj)] = name
        self._alive.append(obj)

    def forget(self, obj: Any) -> None:
        """``obj`` no longer has a name (its name stays taken)."""
        self._names.pop(id(obj), None)

    def name_of(self, obj: Any) -> str | None:
        """The name made for ``obj``, if any."""
        return self._names.get(id(obj))

    def object_of(self, name: str) -> Any:
        """The object ``name`` was first made for (None when it names none)."""
        return self._objects.get(name)

    def snapshot(self) -> tuple[frozenset[str], dict[str, Any], dict[int, str]]:
        """The names handed out so far, for :meth:`restore`."""
        return frozenset(self._taken), dict(self._objects), dict(self._names)

    def restore(self, snapshot: tuple[frozenset[str], dict[str, Any], dict[int, str]]) -> None:
        """Forget the names handed out since ``snapshot`` was taken."""
        taken, objects, names = snapshot
        self._taken = set(taken)
        self._objects = dict(objects)
        self._names = dict(names)

    def __contains__(self, name: object) -> bool:
        return name in self._taken

    @property
    def taken(self) -> frozenset[str]:
        return frozenset(self._taken)
