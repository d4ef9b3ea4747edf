"""Where transforms are made and where they fail: the ``file:line`` error messages show
(:func:`place`), the frame a transform is created in (:func:`creation_site`), and the mark an
exception carries of the transform that raised it (:class:`FailureMark`)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from padlc.language.base import Transform

__all__ = ["FailureMark", "creation_site", "place"]


def place(filename: str, line: int) -> str:
    """``file:line`` as error messages show it; a Jupyter/IPython cell as IPython's own tracebacks
    name it (``Cell In[2], line 5``), not by the temporary file name the kernel compiled it under."""
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython is not None else None
    formatter = getattr(getattr(shell, "compile", None), "format_code_name", None)
    if formatter is not None:
        try:
            named = formatter(filename)
        except Exception:  # another IPython's API: fall back to the plain form
            named = None
        if named is not None:
            return f"{named[0]} {named[1]}, line {line}"
    return f"{filename}:{line}"


def creation_site(depth: int) -> tuple[str, int, dict[str, Any] | None]:
    """File, line and globals of the frame ``depth`` levels above the caller (one frame, no walk)."""
    try:
        frame = sys._getframe(depth + 1)
    except ValueError:  # pragma: no cover - called from the top of the stack
        return ("<unknown>", 0, None)
    return (frame.f_code.co_filename, frame.f_lineno, frame.f_globals)


class FailureMark:
    """Which transform raised an exception (``exc._padlc_transform``), the apply methods' note is
    made from. It travels with the exception from a worker process: as the transform itself when
    that pickles, else as its printed name and creation site (a lambda's, say)."""

    __slots__ = ("label", "location", "transform")

    def __init__(
        self,
        transform: Transform | None,
        label: str | None = None,
        location: tuple[str, int] | None = None,
    ) -> None:
        self.transform = transform
        self.label = label
        self.location = location if transform is None else transform._pd_location

    @property
    def name(self) -> str:
        """The transform as the pipeline prints it (`model`, not a layer's multi-line repr)."""
        if self.transform is not None:
            return self.transform._pd_short_repr()
        return self.label or "?"

    def __reduce__(self) -> Any:
        import pickle

        transform = self.transform
        try:
            pickle.dumps(transform)
        except Exception:  # a lambda or closure: its name and place still go
            transform = None
        return (FailureMark, (transform, self.name, self.location))
