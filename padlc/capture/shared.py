"""Data files shared by the generated modules of one artifact.

A built artifact holds several generated modules, each captured on its own: the lineage
(``pipeline.py``), the CPU stages (``stage_code.py``) and, with the eager backend, the forward
(``forward/eager_code.py``). They often capture the same values: a vocabulary the preprocess and
the model's constructor both read, the layers' weights. :class:`SharedData` stores such a file
once: a data file byte-identical to one written before in the same artifact is removed, and the
module that wrote it references the earlier file instead (by a path relative to its own
directory, ``../weights.safetensors`` from ``forward/``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["SharedData"]

_CHUNK = 1 << 20


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


class SharedData:
    """The data files written so far in one artifact, by content."""

    def __init__(self) -> None:
        self._by_digest: dict[tuple[int, str], Path] = {}

    def keep(self, module_dir: Path, relative: str) -> None:
        """Record the file just written at ``relative`` without ever replacing it (a file read
        from a fixed place); later identical files share it."""
        path = module_dir.joinpath(*relative.split("/"))
        self._by_digest[(path.stat().st_size, _digest(path))] = path

    def share(self, module_dir: Path, relative: str) -> str:
        """The path, relative to ``module_dir``, to read the file just written at ``relative``:
        ``relative`` itself, or an earlier identical file's path (the new copy is then removed)."""
        path = module_dir.joinpath(*relative.split("/"))
        key = (path.stat().st_size, _digest(path))
        earlier = self._by_digest.get(key)
        if earlier is None or earlier == path or not earlier.is_file():
            self._by_digest[key] = path
            return relative
        path.unlink()
        _remove_empty_folders(path.parent, stop=module_dir)
        return Path(os.path.relpath(earlier, module_dir)).as_posix()


def _remove_empty_folders(folder: Path, stop: Path) -> None:
    """Remove ``folder`` and its parents up to (not including) ``stop`` while they are empty."""
    while folder != stop and stop in folder.parents and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
