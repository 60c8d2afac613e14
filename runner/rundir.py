"""A run directory: the complete, self-describing record of one training run.

    runs/<name>/
      config.toml     the exact config trained (snapshot, never edited by tunedeck afterwards)
      command.json    the launch argv, working directory and the names of env vars set (no values)
      status.json     pid, process group, state, exit code, reason (rewritten atomically)
      events.jsonl    machine-readable progress, one JSON object per line (see runner.events)
      output.log      everything the processes printed, human-readable
      checkpoints/    Trainer checkpoints (checkpoint-<step>/)
      final/          the trained adapter or model + tokenizer
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from runner.atomic import atomic_write_text

TRAIN_MODULE = "runner.train"  # `python -m runner.train RUN_DIR`: one per process of a run
SUPERVISOR_MODULE = "runner.launch"  # `python -m runner.launch RUN_DIR`: the supervisor

# Life cycle: starting -> running -> (stopping ->) finished | failed | stopped.
STATES = ("starting", "running", "stopping", "finished", "failed", "stopped")
ACTIVE_STATES = ("starting", "running", "stopping")
FINAL_STATES = ("finished", "failed", "stopped")


def _inside(name: str) -> property:
    """A read-only attribute: the path of `name` inside the run directory."""
    return property(lambda self: self.path / name, doc=f"RUN_DIR/{name}")


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    # The files of a run directory (the layout in this module's docstring), each a path under it.
    config = _inside("config.toml")
    command = _inside("command.json")
    status_file = _inside("status.json")
    events = _inside("events.jsonl")
    log = _inside("output.log")
    checkpoints = _inside("checkpoints")
    final = _inside("final")
    accelerate_config = _inside("accelerate_config.json")  # JSON is valid for accelerate and needs no YAML writer

    def exists(self) -> bool:
        return self.config.is_file()

    # --- status.json -----------------------------------------------------------------------
    def read_status(self) -> dict[str, Any]:
        """The last status written; {} when there is none (or it cannot be parsed, or is no object)."""
        try:
            status = json.loads(self.status_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return status if isinstance(status, dict) else {}

    def update_status(self, **changes: Any) -> dict[str, Any]:
        """Merge `changes` into status.json (atomically) and return the new status."""
        # The launcher, the supervisor, the trainer and `stop` all update it: serialise the
        # read-modify-write so no update is lost.
        with open(self.path / ".status.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            status = self.read_status()
            status.update(changes)
            status["updated"] = time.time()
            atomic_write_text(self.status_file, json.dumps(status, indent=2) + "\n")
            return status

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint with the highest step, or None."""
        best: tuple[int, Path] | None = None
        if self.checkpoints.is_dir():
            for child in self.checkpoints.iterdir():
                m = re.fullmatch(r"checkpoint-(\d+)", child.name)
                if m and child.is_dir() and (child / "trainer_state.json").is_file():
                    step = int(m.group(1))
                    if best is None or step > best[0]:
                        best = (step, child)
        return best[1] if best else None


class RunDirError(Exception):
    """A run directory cannot be made: `reason` is "disk_full" or "unusable"; the message names the
    path and why (and the free space when the disk is full)."""

    def __init__(self, message: str, reason: str = "unusable") -> None:
        super().__init__(message)
        self.reason = reason


PSEUDO_FILESYSTEMS = ("proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs",
                      "securityfs", "pstore", "bpf", "configfs", "fusectl", "mqueue", "hugetlbfs")


def filesystem_type(path: str | os.PathLike[str]) -> str | None:
    """The type of the filesystem `path` is on (from /proc/self/mounts), or None when unknown."""
    real = os.path.realpath(path)
    best: tuple[int, str] | None = None
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) < 3:
                    continue
                point = fields[1].replace("\\040", " ")
                inside = real == point or real.startswith(point.rstrip("/") + "/")
                if inside and (best is None or len(point) > best[0]):
                    best = (len(point), fields[2])
    except OSError:
        return None
    return best[1] if best else None


def free_space(path: str | os.PathLike[str]) -> int | None:
    """Bytes free to an ordinary user on the filesystem of `path` (or of its nearest existing parent)."""
    import shutil

    probe = Path(os.path.abspath(path))
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def disk_full_message(path: str | os.PathLike[str]) -> str:
    free = free_space(path)
    left = "unknown" if free is None else _size(free)
    return f"no space left on the device of {path} ({left} free)"


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def check_runs_dir(base: str | os.PathLike[str]) -> Path:
    """`base` as an absolute path if run directories can be made in it; else RunDirError (path, why).
    Checked before anything is created."""
    path = Path(os.path.abspath(Path(base).expanduser()))
    probe = path
    while not probe.exists():
        if probe == probe.parent:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        what = "is a file" if probe == path else f"cannot be created: {probe} is a file"
        raise RunDirError(f"runs directory {path} {what}, not a directory")
    kind = filesystem_type(probe)
    if kind in PSEUDO_FILESYSTEMS:
        raise RunDirError(f"runs directory {path} is on the {kind} pseudo-filesystem, which cannot hold files; "
                          f"choose a directory on a disk (--runs-dir, $TUNEDECK_RUNS_DIR or training.output_dir)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RunDirError(f"runs directory {path} is not writable by this user ({probe} is read-only to you)")
    return path


def _os_error(path: Path, exc: OSError) -> RunDirError:
    if is_disk_full(exc):
        return RunDirError(disk_full_message(path), "disk_full")
    return RunDirError(f"cannot create a run directory in {path}: {exc.strerror or exc}")


def new_run_dir(base: str | os.PathLike[str], preset_name: str, now: datetime | None = None) -> RunDir:
    """Create `<base>/<preset>-<YYYYmmdd-HHMMSS>` (with a -2, -3... suffix if taken). RunDirError
    when `base` is unusable or full; nothing is left behind then."""
    root = check_runs_dir(base)
    candidate = root / planned_name(preset_name, now)
    try:
        root.mkdir(parents=True, exist_ok=True)
        n = 2
        while True:
            try:
                candidate.mkdir()
                break
            except FileExistsError:
                candidate = root / f"{planned_name(preset_name, now)}-{n}"
                n += 1
        run = RunDir(candidate.resolve())
        with removed_on_failure(run):
            run.checkpoints.mkdir()
    except OSError as exc:
        raise _os_error(root, exc) from exc
    return run


def planned_name(preset_name: str, now: datetime | None = None) -> str:
    """The name a run of `preset_name` gets when created at `now`."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", preset_name).strip("-.") or "run"
    return f"{safe}-{stamp}"


def create_exact_run_dir(path: str | os.PathLike[str]) -> RunDir:
    """Create exactly `path` (FileExistsError if it exists; RunDirError if its parent is unusable)."""
    target = Path(os.path.abspath(Path(path).expanduser()))
    check_runs_dir(target.parent)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.mkdir()
    except FileExistsError:
        raise
    except OSError as exc:
        raise _os_error(target.parent, exc) from exc
    run = RunDir(target.resolve())
    with removed_on_failure(run):
        run.checkpoints.mkdir()
    return run


@contextmanager
def removed_on_failure(run: RunDir):
    """Remove the (new) run directory if the block fails: no half-made run is left for listings to
    misread. A full disk becomes RunDirError("disk_full")."""
    try:
        yield run
    except BaseException as exc:
        shutil.rmtree(run.path, ignore_errors=True)
        if is_disk_full(exc):
            raise RunDirError(disk_full_message(run.path.parent), "disk_full") from exc
        raise


def remove_incomplete_checkpoints(run: RunDir) -> list[Path]:
    """Delete checkpoint directories that never got their trainer_state.json (a save cut short),
    including the Trainer's tmp-checkpoint-* staging directories; returns what was removed."""
    removed = []
    if run.checkpoints.is_dir():
        for child in run.checkpoints.iterdir():
            staged = child.name.startswith("tmp-checkpoint-")
            if child.is_dir() and (staged or not (child / "trainer_state.json").is_file()):
                shutil.rmtree(child, ignore_errors=True)
                removed.append(child)
    return removed


def read_tail(path: str | os.PathLike[str], max_bytes: int) -> tuple[bytes, bool]:
    """The last `max_bytes` of a file (b"" when unreadable), and whether the start was cut off."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            return handle.read(), size > max_bytes
    except OSError:
        return b"", False


def tail_text(path: str | os.PathLike[str], lines: int = 20, max_bytes: int = 64_000) -> str:
    """The last `lines` lines of a (possibly large) text file."""
    data, _ = read_tail(path, max_bytes)
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])
