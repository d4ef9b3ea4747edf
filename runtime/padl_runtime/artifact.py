"""The files of a ``.padl`` directory as its manifest lists them: read once, confined, verified.

:class:`Artifact` is the one way the runtime and padlc read an artifact's files. A file is read
only if the manifest lists it, only from inside the artifact directory (no ``..``, no absolute
path, no symbolic link on the way: each directory is opened relative to the one before it), and
its bytes are checked against the manifest's size and SHA-256 before anyone uses them. Whoever
executes or deserializes a file does so on those bytes, never by opening the path again.

>>> artifact = Artifact.open("model.padl")              # doctest: +SKIP
>>> source = artifact.read("stages.py")                  # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import errno
import hashlib
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from padl_runtime.errors import ArtifactError
from padl_runtime.manifest import (
    MANIFEST_FILE,
    FileEntry,
    Manifest,
    check_relative_path,
    parse_manifest,
)

__all__ = ["Artifact", "DirectoryFiles", "current", "reading"]

#: Read a manifest of at most this many bytes (a real one is a few kilobytes).
_MAX_MANIFEST = 16 << 20
_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_AT = os.open in os.supports_dir_fd and bool(_NOFOLLOW) and bool(_DIRECTORY)


class Artifact:
    """A ``.padl`` directory and its checked manifest (:meth:`open`)."""

    def __init__(self, root: Path, manifest: Manifest, raw_manifest: bytes) -> None:
        self.root = root
        self.manifest = manifest
        self.raw_manifest = raw_manifest
        #: SHA-256 of manifest.json's bytes: what the trust store records and a signature covers
        self.manifest_sha256 = hashlib.sha256(raw_manifest).hexdigest()
        self._entries = {entry.path: entry for entry in manifest.files}
        self._cache: dict[str, bytes] = {}

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Artifact:
        """Read and check ``path/manifest.json`` (no other file is read)."""
        given = Path(path)
        if not given.exists():
            raise ArtifactError(
                f"No artifact at {given}: the path does not exist.", path=str(given)
            )
        if not given.is_dir():
            raise ArtifactError(
                f"{given} is a file, but a .padl artifact is a directory. Pass the directory "
                f"that holds {MANIFEST_FILE}.",
                path=str(given),
            )
        root = given.resolve()  # the artifact may be reached through a link; nothing in it may
        try:
            raw = _read_confined(root, MANIFEST_FILE, _MAX_MANIFEST)
        except FileNotFoundError:
            raise ArtifactError(
                f"{given} has no {MANIFEST_FILE}: it is not a .padl artifact, or it is incomplete.",
                path=str(given),
                file=MANIFEST_FILE,
            ) from None
        except _Refused as exc:
            raise ArtifactError(
                f"{given}: {MANIFEST_FILE} {exc}.", path=str(given), file=MANIFEST_FILE
            ) from None
        return cls(root, parse_manifest(raw, path=str(given)), raw)

    @classmethod
    def reopen(cls, root: str | os.PathLike[str], manifest_sha256: str) -> Artifact:
        """The artifact at ``root`` again (a worker process), refused unless its manifest is still
        the one whose SHA-256 is ``manifest_sha256``: the one trusted and verified before."""
        artifact = cls.open(root)
        if artifact.manifest_sha256 != manifest_sha256:
            raise ArtifactError(
                f"{root}: {MANIFEST_FILE} changed since the artifact was loaded (it was replaced "
                "or edited); a worker process will not run it. Load the artifact again.",
                path=str(root),
                file=MANIFEST_FILE,
            )
        return artifact

    # -- the files -------------------------------------------------------------------------------
    def entry(self, relative: str, needed_by: str = "") -> FileEntry:
        """The manifest's entry for ``relative``; an :class:`ArtifactError` when it is not listed."""
        entry = self._entries.get(relative)
        if entry is None:
            by = f" (needed by {needed_by})" if needed_by else ""
            raise ArtifactError(
                f"{self.root}: {relative!r}{by} is not listed in {MANIFEST_FILE}, so it cannot be "
                "verified and is not used. The artifact is incomplete or was edited; rebuild or "
                "re-save it.",
                path=str(self.root),
                file=relative,
            )
        return entry

    def read(self, relative: str, *, needed_by: str = "", keep: bool = True) -> bytes:
        """The verified bytes of the listed file ``relative`` (read from disk once: ``keep``
        holds them until :meth:`release` for a second reader)."""
        cached = self._cache.get(relative)
        if cached is not None:
            return cached
        entry = self.entry(relative, needed_by)
        try:
            data = _read_confined(self.root, relative, entry.size)
        except FileNotFoundError:
            raise ArtifactError(
                f"{self.root}: file {relative!r} listed in {MANIFEST_FILE} is missing. The "
                "artifact is incomplete; copy it again or rebuild it.",
                path=str(self.root),
                file=relative,
            ) from None
        except _Refused as exc:
            raise ArtifactError(
                f"{self.root}: file {relative!r} {exc}; an artifact's files are plain files "
                "inside its directory. Copy the artifact again or rebuild it.",
                path=str(self.root),
                file=relative,
            ) from None
        if len(data) != entry.size:
            raise ArtifactError(
                f"{self.root}: file {relative!r} has {len(data)} bytes or more, the manifest "
                f"records {entry.size} (truncated or edited). Copy the artifact again or rebuild it.",
                path=str(self.root),
                file=relative,
            )
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise ArtifactError(
                f"{self.root}: file {relative!r} does not match its SHA-256 in {MANIFEST_FILE} "
                "(edited or corrupted). Copy the artifact again or rebuild it.",
                path=str(self.root),
                file=relative,
            )
        if keep:
            self._cache[relative] = data
        return data

    def text(self, relative: str, *, needed_by: str = "") -> str:
        data = self.read(relative, needed_by=needed_by)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ArtifactError(
                f"{self.root}: {relative} is not UTF-8 text ({exc}).",
                path=str(self.root),
                file=relative,
            ) from exc

    def check_present(self) -> None:
        """Every listed file is there, a plain file inside the artifact, with its recorded size:
        a copy that lost or truncated a file is refused before anything of it runs."""
        for entry in self.manifest.files:
            try:
                size = _size_confined(self.root, entry.path)
            except FileNotFoundError:
                raise ArtifactError(
                    f"{self.root}: file {entry.path!r} listed in {MANIFEST_FILE} is missing. The "
                    "artifact is incomplete; copy it again or rebuild it.",
                    path=str(self.root),
                    file=entry.path,
                ) from None
            except _Refused as exc:
                raise ArtifactError(
                    f"{self.root}: file {entry.path!r} {exc}. Copy the artifact again or "
                    "rebuild it.",
                    path=str(self.root),
                    file=entry.path,
                ) from None
            if size != entry.size:
                raise ArtifactError(
                    f"{self.root}: file {entry.path!r} has {size} bytes, the manifest records "
                    f"{entry.size} (truncated or edited). Copy the artifact again or rebuild it.",
                    path=str(self.root),
                    file=entry.path,
                )

    def release(self) -> None:
        """Forget the bytes kept for a second reader (loading is done)."""
        self._cache.clear()

    def private_copy(self, relative: str, *, needed_by: str = "", directory: bool = False) -> Path:
        """A private copy of the listed file ``relative``, or of every listed file under the
        folder ``relative``, written from their verified bytes, for code that can only read a
        path (a tokenizer's ``from_pretrained``, a ``value`` loader, a ``post_load`` hook).

        The copy lives in a directory of this process only this user can read (removed at exit),
        so nothing edited in the artifact after the check reaches the code. ``directory``: a
        folder with no listed file is an empty folder rather than an error.
        """
        prefix = relative.strip("/")
        names = [name for name in self._entries if name == prefix or name.startswith(prefix + "/")]
        if not names and not directory:
            self.entry(prefix, needed_by)  # raises: not listed
        # Keyed by the manifest's digest: equal digests are equal verified bytes.
        target = _copies_root() / self.manifest_sha256
        for name in names:
            out = target.joinpath(*name.split("/"))
            if out.is_file():
                continue
            data = self.read(name, needed_by=needed_by, keep=False)
            out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            handle, temporary = tempfile.mkstemp(prefix=".tmp-", dir=out.parent)
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
            os.replace(temporary, out)
        copied = target.joinpath(*prefix.split("/")) if prefix else target
        if directory:
            copied.mkdir(parents=True, exist_ok=True, mode=0o700)
        return copied

    def contains(self, path: str | os.PathLike[str]) -> str | None:
        """``path`` relative to the artifact (POSIX) when it lies inside it, else ``None``."""
        try:
            relative = Path(os.path.abspath(path)).relative_to(self.root)
        except ValueError:
            return None
        return relative.as_posix()

    def __repr__(self) -> str:
        return f"Artifact({str(self.root)!r})"


class DirectoryFiles:
    """The files of a directory padlc is writing (a build's draft, before its manifest): read from
    inside ``root`` with the same confinement, without a manifest to verify against."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def read(self, relative: str, *, needed_by: str = "", keep: bool = True) -> bytes:
        try:
            return _read_confined(self.root, relative, None)
        except (FileNotFoundError, _Refused) as exc:
            raise ArtifactError(
                f"{self.root}: cannot read {relative!r}"
                + (f" (needed by {needed_by})" if needed_by else "")
                + f": {exc or 'missing'}.",
                path=str(self.root),
                file=relative,
            ) from None

    def contains(self, path: str | os.PathLike[str]) -> str | None:
        try:
            return Path(os.path.abspath(path)).relative_to(self.root).as_posix()
        except ValueError:
            return None


# -- private copies of verified files ------------------------------------------------------------
_COPIES: list[Path] = []  # the one folder of this process, made on first use
_COPIES_LOCK = threading.Lock()


def _copies_root() -> Path:
    with _COPIES_LOCK:
        if not _COPIES:
            root = Path(tempfile.mkdtemp(prefix="padl-verified-"))  # mode 0o700
            atexit.register(shutil.rmtree, root, True)
            _COPIES.append(root)
        return _COPIES[0]


# -- the artifact being loaded -------------------------------------------------------------------
_READING: contextvars.ContextVar[Artifact | None] = contextvars.ContextVar(
    "padl_artifact_reading", default=None
)


def current() -> Artifact | None:
    """The artifact whose code is being executed in this context (see :func:`reading`)."""
    return _READING.get()


@contextlib.contextmanager
def reading(artifact: Artifact | None) -> Iterator[None]:
    """While the block runs, :mod:`padl_runtime.values` reads data files inside ``artifact``'s
    directory through it (listed and verified), not from the disk."""
    token = _READING.set(artifact)
    try:
        yield
    finally:
        _READING.reset(token)


# -- confined reading ----------------------------------------------------------------------------
class _Refused(Exception):
    """A path that leaves the artifact, goes through a symbolic link or is not a plain file."""


def _read_confined(root: Path, relative: str, size: int | None) -> bytes:
    """The bytes of ``root/relative`` (at most ``size + 1`` of them, to see a longer file)."""
    with _opened(root, relative) as fd:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Refused("is not a plain file")
        limit = info.st_size if size is None else min(info.st_size, size + 1)
        chunks = []
        remaining = limit
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)


def _size_confined(root: Path, relative: str) -> int:
    with _opened(root, relative) as fd:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Refused("is not a plain file")
        return info.st_size


@contextlib.contextmanager
def _opened(root: Path, relative: str) -> Iterator[int]:
    problem = check_relative_path(relative)
    if problem is not None:
        raise _Refused(f"is not a path inside the artifact ({problem})")
    parts = relative.split("/")
    if not _AT:  # no openat (Windows): check each step for a link, then open the path
        current_path = root
        for part in parts:
            current_path = current_path / part
            if current_path.is_symlink():
                raise _Refused("goes through a symbolic link")
        try:
            fd = os.open(current_path, _READ)
        except IsADirectoryError:
            raise _Refused("is a directory, not a plain file") from None
        try:
            yield fd
        finally:
            os.close(fd)
        return
    fds = [os.open(root, _READ | _DIRECTORY)]
    try:
        for part in parts[:-1]:
            try:
                fds.append(os.open(part, _READ | _DIRECTORY | _NOFOLLOW, dir_fd=fds[-1]))
            except NotADirectoryError:
                raise _Refused("goes through a symbolic link or a file") from None
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise _Refused("goes through a symbolic link") from None
                raise
        try:
            fd = os.open(parts[-1], _READ | _NOFOLLOW, dir_fd=fds[-1])
        except IsADirectoryError:
            raise _Refused("is a directory, not a plain file") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _Refused("is a symbolic link") from None
            raise
        try:
            yield fd
        finally:
            os.close(fd)
    finally:
        for opened in fds:
            os.close(opened)
