"""Writing a ``.padl`` directory atomically.

An artifact is built in a temporary directory beside its target and renamed into place only when
complete, so a reader never sees half an artifact and a failed overwrite leaves the old one intact::

    with ArtifactWriter("model.padl") as writer:
        (writer.root / "pipeline.py").write_text(source)
        writer.commit({"padlc_version": "0.1.0", "kind": "saved", ...})
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from padl_runtime.manifest import MANIFEST_FILE, Manifest, StageLayout, file_entry

__all__ = ["ArtifactWriter", "artifact_path"]

SUFFIX = ".padl"


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
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.root = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.tmp-", dir=parent))
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
            if p.is_file() and p.relative_to(self.root).as_posix() != MANIFEST_FILE
        )
        files = tuple(file_entry(self.root, r) for r in relative)
        manifest = Manifest(files=files, **kwargs)
        (self.root / MANIFEST_FILE).write_text(manifest.to_json(), encoding="utf-8")
        # Readable by everyone, like a checked-out repository: mkdtemp makes the directory 0o700,
        # and some writers (safetensors) create their files 0o600.
        os.chmod(self.root, 0o755)
        for entry in self.root.rglob("*"):
            os.chmod(entry, 0o755 if entry.is_dir() else 0o644)
        self._swap_into_place()
        self._committed = True
        return self.path

    def _swap_into_place(self) -> None:
        target = self.path
        if not target.exists():
            os.rename(self.root, target)
            return
        backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        backup.rmdir()
        os.rename(target, backup)  # the old artifact is kept until the new one is in place
        try:
            os.rename(self.root, target)
        except BaseException:
            os.rename(backup, target)
            raise
        shutil.rmtree(backup, ignore_errors=True)
