"""Runs on disk: list them with their state and progress, detect lost ones, resolve a RUN argument.

A run whose status says starting/running/stopping but whose supervisor process is gone (killed,
machine rebooted) is reported as "lost", with the tail of its log, never as running.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.launch import TRAIN_MODULE
from runner.problems import did_you_mean
from runner.rundir import ACTIVE_STATES, RunDir, read_tail
from runner.schema import FIELDS_BY_KEY

RUNS_DIR_ENV = "TUNEDECK_RUNS_DIR"
STARTUP_GRACE_S = 60.0  # a run still "starting" without a pid after this long never started


class RunNotFound(Exception):
    pass


@dataclass
class RunInfo:
    run: RunDir
    state: str  # a rundir state, or "lost"
    preset: str | None
    step: int | None
    total_steps: int | None
    last_loss: float | None
    started: float | None
    ended: float | None
    status: dict[str, Any] = field(default_factory=dict)
    log_tail: str = ""  # filled for lost and failed runs

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def progress(self) -> float | None:
        if self.step is None or not self.total_steps:
            return None
        return min(1.0, self.step / self.total_steps)

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended or time.time()) - self.started

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "path": str(self.run.path), "state": self.state, "preset": self.preset,
            "step": self.step, "total_steps": self.total_steps, "progress": self.progress,
            "last_loss": self.last_loss, "started": self.started, "ended": self.ended,
            "duration_s": self.duration, "reason": self.status.get("reason"),
            "message": self.status.get("message"), "log_tail": self.log_tail,
        }


def runs_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--runs-dir, else $TUNEDECK_RUNS_DIR, else the schema's training.output_dir default (./runs)."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(RUNS_DIR_ENV) or FIELDS_BY_KEY["training.output_dir"].default)


def process_alive(status: dict[str, Any]) -> bool | None:
    """Whether the run's supervisor still exists; None when it cannot be told (other host)."""
    import psutil

    if status.get("host") and status["host"] != socket.gethostname():
        return None
    pid = status.get("pid")
    if not pid:
        return None
    try:
        proc = psutil.Process(int(pid))
        created = status.get("pid_create_time")
        if created is not None and abs(proc.create_time() - float(created)) > 1.0:
            return False  # the pid was reused by an unrelated process
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def run_processes(run_path: str | os.PathLike[str], pgid: int | None) -> dict[int, bool]:
    """Every live process of a run, each pid mapped to whether it is a trainer: its process group
    (supervisor, accelerate launch) and its trainers.

    torch's multi-process launcher starts each trainer in a session of its own, outside the group,
    so trainers are found by their command line (`python -m runner.train RUN_DIR`): that also finds
    them orphaned, should their launcher have been killed.
    """
    import psutil

    run_path = str(Path(run_path).resolve())
    found = {}
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            trainer = is_trainer_of(proc.info["cmdline"] or [], run_path)
            if trainer or (pgid and os.getpgid(proc.pid) == pgid):
                found[proc.pid] = trainer
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return found


def run_pids(run_path: str | os.PathLike[str], pgid: int | None) -> list[int]:
    """Every live process of a run (see `run_processes`)."""
    return list(run_processes(run_path, pgid))


def is_trainer_of(cmdline: list[str], run_path: str | None = None) -> bool:
    """Whether a command line runs the training entry point (for `run_path`, when given). The
    module is the one after the first -m: the launcher's argv names runner.train too, later."""
    if "-m" not in cmdline:
        return False
    rest = cmdline[cmdline.index("-m") + 1:]
    if rest[:1] != [TRAIN_MODULE]:
        return False
    return run_path is None or (len(rest) > 1 and str(Path(rest[1]).resolve()) == run_path)


def effective_state(status: dict[str, Any]) -> str:
    if status.get("slurm"):  # a SLURM job: no local process to look at, ask the scheduler
        from runner.slurm import effective_state as slurm_state

        return slurm_state(status)
    state = status.get("state") or "lost"
    if state not in ACTIVE_STATES:
        return state
    alive = process_alive(status)
    if alive is False:
        return "lost"
    if alive is None and not status.get("pid"):
        created = status.get("created") or status.get("updated") or 0
        if time.time() - float(created) > STARTUP_GRACE_S:
            return "lost"
    return state


def _tail_events(path: Path, max_bytes: int = 256_000) -> list[dict[str, Any]]:
    """The events in the last `max_bytes` of the file (enough for the latest log line)."""
    data, cut = read_tail(path, max_bytes)
    lines = data.split(b"\n")
    if cut:
        lines = lines[1:]  # probably a partial line
    events = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def info(run: RunDir) -> RunInfo:
    from runner.launch import tail_text

    status = run.read_status()
    state = effective_state(status)
    step = total = loss = None
    for event in reversed(_tail_events(run.events)):
        if step is None and "step" in event:
            step = int(event["step"])
        if total is None and event.get("total_steps"):
            total = int(event["total_steps"])
        if loss is None and event.get("type") == "log" and event.get("loss") is not None:
            loss = float(event["loss"])
        if step is not None and total is not None and loss is not None:
            break
    ended = status.get("ended")
    if state == "lost":
        ended = status.get("updated")
    tail = tail_text(run.log, 15) if state in ("lost", "failed") else ""
    return RunInfo(run, state, status.get("preset"), step, total, loss, status.get("started") or status.get("created"),
                   ended, status, tail)


def list_runs(root: str | os.PathLike[str] | None = None) -> list[RunInfo]:
    """Every run under the runs directory, oldest first."""
    base = runs_root(root)
    if not base.is_dir():
        return []
    runs = [info(RunDir(p.resolve())) for p in base.iterdir() if p.is_dir() and (p / "config.toml").is_file()]
    return sorted(runs, key=lambda r: (r.started or 0, r.name))


def resolve(spec: str, root: str | os.PathLike[str] | None = None) -> RunDir:
    """RUN as a directory path, a run name, a unique name prefix, or 'latest'."""
    direct = Path(spec).expanduser()
    if (direct / "config.toml").is_file():
        return RunDir(direct.resolve())
    base = runs_root(root)
    runs = list_runs(base)
    if spec == "latest":
        if not runs:
            raise RunNotFound(f"no runs in {base}")
        return runs[-1].run
    exact = [r for r in runs if r.name == spec]
    if exact:
        return exact[0].run
    matches = [r for r in runs if r.name.startswith(spec)]
    if len(matches) == 1:
        return matches[0].run
    if len(matches) > 1:
        names = ", ".join(r.name for r in matches[:8])
        raise RunNotFound(f"{spec!r} matches {len(matches)} runs in {base}: {names}; give more of the name")
    hint = did_you_mean(spec, [r.name for r in runs])
    raise RunNotFound(f"no run {spec!r} in {base}" + (f"; did you mean {hint!r}?" if hint else
                                                       " (give a run directory, a run name, a prefix or 'latest')"))
