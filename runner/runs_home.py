"""Where runs live, and the index of every run directory created anywhere.

A run can be created under the runs home, under `--runs-dir`, `$TUNEDECK_RUNS_DIR`,
`training.output_dir`, or by a cluster job on a shared filesystem. Each one is recorded in a
small index in the user's state directory, so `runs`, `attach`, `logs`, `stop`, `resume` and the
TUI's runs screen find it from any working directory and any new login.

The API (small and stable; other parts of tunedeck, e.g. SLURM submission, register runs with it):

    runs_home() -> Path
        <state dir>/runs, e.g. ~/.local/state/tunedeck/runs (runner.paths.state_dir(), which
        follows XDG_STATE_HOME and TUNEDECK_STATE_DIR).
    runs_dir(explicit=None, config=None) -> Path
        Where a new run directory goes. First of: `explicit` (--runs-dir), $TUNEDECK_RUNS_DIR,
        `config.training.output_dir` when set, runs_home(). Relative paths are taken from the
        current directory and returned absolute.
    record(run_dir) -> None
        Add a run directory to the index (idempotent; safe with any number of concurrent writers).
    scan() -> Scan
        Every run directory known: indexed ones plus any found directly in runs_home() and
        $TUNEDECK_RUNS_DIR. `Scan.present` are directories that hold a run (config.toml);
        `Scan.removed` are index entries whose directory is gone. scan() changes nothing.
    forget(run_dir) -> None
        Drop an index entry. Listings call it for the removed entries they have shown, so a
        vanished run is reported once, then dropped.

Index format: one file per run, `<state dir>/runs-index/<sha256 of the path>.json`, holding
{"path", "host", "recorded"}; written to a temp file and renamed, so concurrent writers never
touch the same bytes and a reader never sees half an entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.paths import state_dir

RUNS_DIR_ENV = "TUNEDECK_RUNS_DIR"
INDEX_DIRNAME = "runs-index"


def runs_home() -> Path:
    """The default home of runs: <state dir>/runs."""
    return state_dir() / "runs"


def index_dir() -> Path:
    return state_dir() / INDEX_DIRNAME


def runs_dir(explicit: str | os.PathLike[str] | None = None, config: Any = None) -> Path:
    """Where a new run goes: --runs-dir, else $TUNEDECK_RUNS_DIR, else training.output_dir, else runs_home()."""
    chosen: str | os.PathLike[str] | None = explicit or os.environ.get(RUNS_DIR_ENV) or None
    if chosen is None and config is not None:
        chosen = (config.training.output_dir or "").strip() or None
    path = Path(chosen).expanduser() if chosen else runs_home()
    return Path(os.path.abspath(path))


def _entry_file(run_dir: Path) -> Path:
    digest = hashlib.sha256(str(run_dir).encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return index_dir() / f"{digest}.json"


def _absolute(run_dir: str | os.PathLike[str]) -> Path:
    return Path(os.path.abspath(Path(run_dir).expanduser()))


def record(run_dir: str | os.PathLike[str]) -> None:
    """Add `run_dir` to the index (atomic: temp file + rename; one file per run, so no lock is needed)."""
    from runner.atomic import atomic_write_text

    path = _absolute(run_dir)
    entry = {"path": str(path), "host": socket.gethostname(), "recorded": time.time()}
    atomic_write_text(_entry_file(path), json.dumps(entry) + "\n")


def forget(run_dir: str | os.PathLike[str]) -> None:
    """Drop `run_dir`'s index entry (nothing happens if there is none)."""
    try:
        _entry_file(_absolute(run_dir)).unlink()
    except FileNotFoundError:
        pass


@dataclass
class Scan:
    present: list[Path] = field(default_factory=list)  # run directories (they hold config.toml)
    removed: list[Path] = field(default_factory=list)  # indexed, but the directory is gone


def indexed() -> list[Path]:
    """The paths in the index, in no particular order (unreadable entries are skipped)."""
    paths = []
    try:
        entries = list(index_dir().iterdir())
    except OSError:
        return []
    for entry in entries:
        if entry.suffix != ".json" or entry.name.startswith("."):
            continue  # a writer's temp file
        try:
            paths.append(Path(json.loads(entry.read_text(encoding="utf-8"))["path"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return paths


def _children(root: Path) -> list[Path]:
    try:
        return [p for p in root.iterdir() if (p / "config.toml").is_file()]
    except OSError:
        return []


def scan() -> Scan:
    """Every known run directory (see the module docstring); changes nothing on disk."""
    result = Scan()
    seen: set[str] = set()

    def add(path: Path) -> None:
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            result.present.append(Path(key))

    for path in indexed():
        if (path / "config.toml").is_file():
            add(path)
        elif not path.exists():
            result.removed.append(path)
        # else: a directory still being created, or not a run (yet): neither listed nor dropped
    roots = [runs_home()]
    if os.environ.get(RUNS_DIR_ENV):
        roots.append(runs_dir())
    for root in roots:
        for path in _children(root):  # runs made before the index existed, or copied in by hand
            add(path)
    return result
