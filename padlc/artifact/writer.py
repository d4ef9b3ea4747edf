"""Writing a ``.padl`` directory atomically.

An artifact is built in a temporary directory beside its target and renamed into place only when
complete, so a reader never sees half an artifact and a failed overwrite leaves the old one intact.
Without ``force_overwrite`` the rename never replaces an artifact that another process saved to the
same path meanwhile; with it, the old artifact is swapped for the new one in one step
(:mod:`padlc.artifact.swap`). A writer holds a lock on its temporary directory, so the next save to
the same path removes the ones killed saves left behind, and never one still being written. The
manifest written is recorded in the user's trust store (:mod:`padl_runtime.trust`)::

    with ArtifactWriter("model.padl") as writer:
        (writer.root / "pipeline.py").write_text(source)
        writer.commit({"padlc_version": "0.1.0", "kind": "saved", ...})
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from padl_runtime.manifest import MANIFEST_FILE, Manifest, StageLayout, file_entry
from padl_runtime.trust import remember
from padlc.artifact.swap import place_new, swap

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; leftovers are not cleaned there
    fcntl = None  # type: ignore[assignment]

__all__ = ["ArtifactWriter", "artifact_path"]

SUFFIX = ".padl"
#: Written into a temporary directory once its writer holds the lock: a directory with it and
#: without the lock is a killed save's leftover.
_MARKER = ".padl-writing"
#: A leftover without the marker (killed before writing it) is removed once this old (seconds).
_UNMARKED_AGE = 3600.0


def artifact_path(path: str | os.PathLike[str]) -> Path:
    """``path`` with the ``.padl`` suffix added when it has none (``model`` → ``model.padl``)."""
    target = Path(path)
    if target.suffix != SUFFIX:
        target = target.with_name(target.name + SUFFIX)
    return target


class ArtifactWriter:
    """Build an artifact in a temporary directory (``root``) and swap it into place on :meth:`commit`.

    Used as a context manager: leaving the block without a commit (an exception while writing)
    removes the temporary directory and leaves the target untouched.
    """

    def __init__(self, path: str | os.PathLike[str], force_overwrite: bool = False) -> None:
        self.path = artifact_path(path).absolute()
        self.force_overwrite = force_overwrite
        self._committed = False
        if self.path.is_file() or (self.path.is_symlink() and not self.path.is_dir()):
            raise FileExistsError(
                f"Cannot save to {self.path}: it is a file. A .padl artifact is a directory; "
                "choose another path or remove the file."
            )
        if self.path.is_dir() and any(self.path.iterdir()) and not force_overwrite:
            raise FileExistsError(
                f"{self.path} already exists and is not empty. Pass force_overwrite=True to "
                "replace it, or choose another path."
            )
        parent = self.path.parent
        if parent.exists() and not parent.is_dir():
            raise NotADirectoryError(
                f"Cannot save to {self.path}: its parent {parent} is a file, not a directory."
            )
        self._lock: int | None = None
        try:
            parent.mkdir(parents=True, exist_ok=True)
            _remove_leftovers(self.path)
            self.root = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.tmp-", dir=parent))
            self._lock = _lock(self.root)
            (self.root / _MARKER).touch()
        except PermissionError as exc:
            raise PermissionError(
                f"Cannot save to {self.path}: no permission to write in {parent} "
                f"({exc.strerror}). Choose a writable directory."
            ) from exc

    def __enter__(self) -> ArtifactWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.discard()

    def discard(self) -> None:
        """Remove the temporary directory unless committed (idempotent)."""
        if not self._committed:
            shutil.rmtree(self.root, ignore_errors=True)
        self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def commit(self, manifest_kwargs: Mapping[str, Any]) -> Path:
        """Hash every file under ``root`` into the manifest, write ``manifest.json`` and move the
        directory into place; returns the artifact's path.

        ``manifest_kwargs`` are :class:`padl_runtime.manifest.Manifest` fields except ``files``
        (``stages`` may be a :class:`StageLayout` or a dict of its fields).
        """
        if self._committed:
            raise RuntimeError(f"{self.path} was already committed.")
        kwargs = dict(manifest_kwargs)
        if "files" in kwargs:
            raise ValueError("commit() computes `files` itself; do not pass it.")
        if isinstance(kwargs.get("stages"), Mapping):
            kwargs["stages"] = StageLayout(**kwargs["stages"])
        relative = sorted(
            p.relative_to(self.root).as_posix()
            for p in self.root.rglob("*")
            if p.is_file() and p.relative_to(self.root).as_posix() not in (MANIFEST_FILE, _MARKER)
        )
        files = tuple(file_entry(self.root, r) for r in relative)
        manifest = Manifest(files=files, **kwargs)
        text = manifest.to_json().encode("utf-8")
        (self.root / MANIFEST_FILE).write_bytes(text)
        # Readable by everyone, like a checked-out repository: mkdtemp makes the directory 0o700,
        # and some writers (safetensors) create their files 0o600.
        os.chmod(self.root, 0o755)
        for entry in self.root.rglob("*"):
            os.chmod(entry, 0o755 if entry.is_dir() else 0o644)
        (self.root / _MARKER).unlink()
        if self.force_overwrite:
            old = swap(self.root, self.path)
            self._committed = True
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        else:
            place_new(self.root, self.path)
            self._committed = True
        self._unlock()
        try:
            remember(text, self.path, how="written by padlc")
        except OSError as exc:
            warnings.warn(
                f"{self.path} was written, but recording it in your trust store failed ({exc}): "
                "load it with trust_code=True.",
                RuntimeWarning,
                stacklevel=3,
            )
        return self.path


def _lock(directory: Path) -> int | None:
    """An exclusive lock on ``directory`` for as long as this process holds the descriptor (the
    system releases it when the process dies, however it dies)."""
    if fcntl is None:
        return None
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def _remove_leftovers(target: Path) -> None:
    """Remove the temporary directories of saves to ``target`` that were killed: unlocked, and
    marked by their writer (or older than an hour: killed before marking, or a backup of the
    two-rename overwrite)."""
    if fcntl is None:
        return
    try:
        candidates = [
            p
            for p in target.parent.iterdir()
            if p.name.startswith((f".{target.name}.tmp-", f".{target.name}.old-"))
        ]
    except OSError:
        return
    for candidate in candidates:
        with contextlib.suppress(OSError):
            if not candidate.is_dir() or candidate.is_symlink():
                continue
            fd = os.open(candidate, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its writer is alive
                if (
                    candidate / _MARKER
                ).exists() or time.time() - candidate.stat().st_mtime > _UNMARKED_AGE:
                    shutil.rmtree(candidate, ignore_errors=True)
            finally:
                os.close(fd)
