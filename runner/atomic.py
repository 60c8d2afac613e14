"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never a torn one.

The new content goes to a temp file beside the target (`.NAME.XXXXXXXX.tmp`), is fsynced and renamed
over it. A writer killed before the rename leaves its temp file behind; the next write of the same
file removes such leftovers. Only ours: the name must match the pattern below, and the file must not
be locked, since every writer holds an exclusive lock on its temp file until it is renamed (a lock
dies with its process, so a lockable temp file belongs to a writer that is gone).
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def temp_prefix(target: Path) -> str:
    return f".{target.name}."


def is_our_temp(target: Path, candidate: str) -> bool:
    """Whether `candidate` (a name in target's directory) is a temp file of a write to `target`.

    tempfile.mkstemp puts 8 characters from [a-z0-9_] between the prefix and the suffix.
    """
    return re.fullmatch(re.escape(temp_prefix(target)) + r"[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX), candidate) is not None


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write `text` to `path` via a temp file in the same directory, fsync, then rename over it."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _locked_temp(target)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            if target.exists():  # keep the user's permissions on the file being replaced
                os.chmod(tmp, target.stat().st_mode & 0o7777)
            os.replace(tmp, target)  # renamed while still locked, so no cleaner takes it for a leftover
    except BaseException as exc:
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(target)  # name the file that could not be written (e.g. a full disk)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(target.parent)
    remove_leftovers(target)


def _locked_temp(target: Path) -> tuple[int, str]:
    """A new temp file beside `target`, exclusively locked (ours while this process lives).

    Between creating and locking it, another writer's cleanup could take it for a leftover and delete
    it; the link count says so, and a fresh one is made.
    """
    while True:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target), suffix=TEMP_SUFFIX, dir=target.parent)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink > 0:
            return fd, tmp
        os.close(fd)


def remove_leftovers(target: Path) -> list[Path]:
    """Delete temp files that killed writes of `target` left behind; the paths removed."""
    removed = []
    try:
        names = os.listdir(target.parent)
    except OSError:
        return removed
    for name in names:
        if not is_our_temp(target, name):
            continue
        leftover = target.parent / name
        try:
            fd = os.open(leftover, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while its writer is alive
            os.unlink(leftover)
            removed.append(leftover)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself (the directory entry) on filesystems that need it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
