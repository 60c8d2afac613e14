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

import fcntl
import json
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from runner.atomic import atomic_write_text

# Life cycle: starting -> running -> (stopping ->) finished | failed | stopped.
STATES = ("starting", "running", "stopping", "finished", "failed", "stopped")
ACTIVE_STATES = ("starting", "running", "stopping")
FINAL_STATES = ("finished", "failed", "stopped")


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> Path:
        return self.path / "config.toml"

    @property
    def command(self) -> Path:
        return self.path / "command.json"

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

    @property
    def events(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def log(self) -> Path:
        return self.path / "output.log"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def final(self) -> Path:
        return self.path / "final"

    @property
    def accelerate_config(self) -> Path:
        return self.path / "accelerate_config.json"  # JSON is valid for accelerate and needs no YAML writer

    def exists(self) -> bool:
        return self.config.is_file()

    # --- status.json -----------------------------------------------------------------------
    def read_status(self) -> dict[str, Any]:
        """The last status written; {} when there is none (or it cannot be parsed)."""
        try:
            return json.loads(self.status_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

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


def new_run_dir(base: str | os.PathLike[str], preset_name: str, now: datetime | None = None) -> RunDir:
    """Create `<base>/<preset>-<YYYYmmdd-HHMMSS>` (with a -2, -3... suffix if taken)."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", preset_name).strip("-.") or "run"
    root = Path(base)
    root.mkdir(parents=True, exist_ok=True)
    candidate = root / f"{safe}-{stamp}"
    n = 2
    while True:
        try:
            candidate.mkdir()
            break
        except FileExistsError:
            candidate = root / f"{safe}-{stamp}-{n}"
            n += 1
    run = RunDir(candidate.resolve())
    run.checkpoints.mkdir()
    return run


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
