"""Is a run alive? Asked of the run directory itself, not of a pid someone wrote down.

The supervisor and the rank-0 trainer each hold an exclusive `fcntl.flock` on a lock file in the
run directory for as long as they live (the kernel drops it when the process dies, kill -9
included). A run is alive while either lock is held, whatever status.json says; a trainer
holding its lock while no supervisor holds its own is "running (unsupervised)" (its supervisor was
killed). A second supervisor or trainer for the same directory cannot take the lock and exits
before writing anything, so two trainers never write one run directory.

Probing takes a shared lock for an instant and releases it; holders retry for a moment, so a probe
that happens to coincide with a holder's start never makes it give up.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from dataclasses import dataclass

from runner.rundir import RunDir

ROLES = ("supervisor", "trainer")
ACQUIRE_TRIES = 40  # x 25 ms: a probe holds its shared lock for microseconds
ACQUIRE_PAUSE_S = 0.025


class RunLocked(Exception):
    """Another live process already holds this role's lock on the run directory."""


def lock_file(run: RunDir, role: str) -> str:
    assert role in ROLES, role
    return str(run.path / f".{role}.lock")


def hold(run: RunDir, role: str) -> int:
    """Take `role`'s lock for the life of this process; returns the fd (keep it open). Raises
    RunLocked when another process holds it."""
    fd = os.open(lock_file(run, role), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    for _ in range(ACQUIRE_TRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())  # for people reading the directory; never trusted
            return fd
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
        time.sleep(ACQUIRE_PAUSE_S)
    os.close(fd)
    raise RunLocked(f"another {role} is already running for {run.path}")


def is_held(run: RunDir, role: str) -> bool:
    """Whether some live process holds `role`'s lock (read-only: creates nothing)."""
    try:
        fd = os.open(lock_file(run, role), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False  # no lock file: that role never started here
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Holders:
    supervisor: bool
    trainer: bool

    @property
    def alive(self) -> bool:
        return self.supervisor or self.trainer

    @property
    def unsupervised(self) -> bool:
        return self.trainer and not self.supervisor

    @property
    def known(self) -> bool:
        """Whether this run directory uses locks at all (runs from before they existed do not)."""
        return self._known

    _known: bool = True


def holders(run: RunDir) -> Holders:
    known = any(os.path.exists(lock_file(run, role)) for role in ROLES)
    return Holders(is_held(run, "supervisor"), is_held(run, "trainer"), known)
