"""Putting a finished artifact directory in place atomically: exclusively, or by one swap.

On Linux, ``renameat2`` does both in one system call: ``RENAME_NOREPLACE`` moves a directory to
a path only if nothing is there (an artifact another process saved meanwhile is never replaced),
and ``RENAME_EXCHANGE`` swaps two directories, so the path holds the old artifact or the new one
at every instant. Where ``renameat2`` is missing (macOS, Windows, an old C library, a file system
without it) :func:`place_new` falls back to ``os.rename``, which never replaces a directory that
has files (POSIX refuses a non-empty target; Windows any existing one), and :func:`swap` to two
renames: a crash between them leaves the old artifact under a hidden ``.<name>.old-*`` name
beside the path, and no artifact at the path (docs/saving.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["place_new", "swap"]

_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _renameat2() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None
    function = getattr(libc, "renameat2", None)
    if function is not None:
        function.argtypes = [
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_uint,
        ]
        function.restype = ctypes.c_int
    return function


_RENAMEAT2 = _renameat2()


def _call(source: Path, target: Path, flags: int) -> bool:
    """``renameat2(source, target, flags)``; ``False`` when the system cannot do it (then the
    caller falls back), an ``OSError`` for any other failure."""
    if _RENAMEAT2 is None:
        return False
    result = _RENAMEAT2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), flags)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, getattr(errno, "EOPNOTSUPP", -1)):
        return False
    raise OSError(code, os.strerror(code), str(target))


def place_new(source: Path, target: Path) -> None:
    """Move the directory ``source`` to ``target``, which must not exist (an empty directory is
    taken as nothing there); ``FileExistsError`` when something appeared there."""
    if target.is_dir() and not target.is_symlink():
        with contextlib.suppress(OSError):
            target.rmdir()  # an empty directory holds no artifact; a full one stays
    try:
        if _call(source, target, _RENAME_NOREPLACE):
            return
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "exists", str(target))
        os.rename(source, target)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY) or isinstance(exc, FileExistsError):
            raise FileExistsError(
                f"{target} was created by someone else while this artifact was being written; "
                "it was left as it is. Pass force_overwrite=True to replace it, or choose "
                "another path."
            ) from None
        raise


def swap(source: Path, target: Path) -> Path | None:
    """Put the directory ``source`` at ``target`` in place of what is there, atomically where the
    system can; returns where the old artifact now is (to be removed), or ``None``."""
    if not os.path.lexists(target):
        try:
            place_new(source, target)
            return None
        except FileExistsError:
            pass  # it appeared meanwhile: swap with it
    if _call(source, target, _RENAME_EXCHANGE):
        return source  # the old artifact is where the new one was
    if os.path.islink(target):
        raise FileExistsError(f"Cannot replace {target}: it is a symbolic link.")
    backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    backup.rmdir()
    os.rename(target, backup)  # the old artifact is kept until the new one is in place
    try:
        os.rename(source, target)
    except BaseException:
        os.rename(backup, target)
        raise
    return backup


def remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
