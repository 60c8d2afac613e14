"""Recently opened or saved preset files, newest first, for the Open picker."""

from __future__ import annotations

import json
from pathlib import Path

from runner.atomic import atomic_write_text
from runner.paths import state_dir

MAX_RECENT = 12


def recent_file() -> Path:
    return state_dir() / "recent.json"


def recent_paths() -> list[Path]:
    """Recent files that still exist."""
    try:
        entries = json.loads(recent_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [Path(p) for p in entries if isinstance(p, str) and Path(p).is_file()]


def remember(path: Path) -> None:
    path = path.resolve()
    entries = [p for p in recent_paths() if p.resolve() != path]
    entries.insert(0, path)
    try:
        atomic_write_text(recent_file(), json.dumps([str(p) for p in entries[:MAX_RECENT]], indent=1))
    except OSError:
        pass  # a read-only state dir must not stop the editor; recents are a convenience
