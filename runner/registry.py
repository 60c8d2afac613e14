"""Runs on disk: list them with their state and progress, tell live from lost, resolve a RUN argument.

Runs are found through runner.runs_home (the index of every run directory created anywhere, plus
the runs home), so every command sees the same runs from any working directory.

A run's state comes from the run itself (runner.liveness): while its supervisor or trainer holds
its lock it is alive, whatever status.json says (a damaged or stale file hides nothing); when no
lock is held, a status that still says starting/running/stopping is "lost", with the tail of its log.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.events import newest_events
from runner.problems import did_you_mean
from runner.rundir import ACTIVE_STATES, FINAL_STATES, SUPERVISOR_MODULE, TRAIN_MODULE, RunDir, tail_text
from runner.runs_home import RUNS_DIR_ENV, runs_dir  # noqa: F401 - RUNS_DIR_ENV is part of this API

STARTUP_GRACE_S = 60.0  # a run still "starting" without a pid after this long never started
UNSUPERVISED = "running (unsupervised)"


class RunNotFound(Exception):
    pass


@dataclass(frozen=True)
class RunState:
    state: str  # a rundir state, or "lost"
    unsupervised: bool = False  # alive, but only the trainer holds its lock (the supervisor died)

    @property
    def label(self) -> str:
        """What lists show: the state, or "running (unsupervised)"."""
        return UNSUPERVISED if self.unsupervised and self.state in ACTIVE_STATES else self.state

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


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
    unsupervised: bool = False

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def label(self) -> str:
        return RunState(self.state, self.unsupervised).label

    @property
    def reason(self) -> str | None:
        return self.status.get("reason") if self.state in ("failed", "stopped") else None

    @property
    def message(self) -> str | None:
        return self.status.get("message") if self.state in ("failed", "stopped") else None

    @property
    def progress(self) -> float | None:
        if self.step is None or not self.total_steps:
            return None
        return min(1.0, self.step / self.total_steps)

    @property
    def duration(self) -> float | None:
        """Training wall time over every launch (resumes add theirs), up to now for a live run."""
        return run_duration(self.status, self.ended if self.state not in ACTIVE_STATES else None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "path": str(self.run.path), "state": self.state, "label": self.label,
            "unsupervised": self.unsupervised, "preset": self.preset,
            "step": self.step, "total_steps": self.total_steps, "progress": self.progress,
            "last_loss": self.last_loss, "started": self.started, "ended": self.ended,
            "duration_s": self.duration, "reason": self.status.get("reason"),
            "message": self.status.get("message"), "log_tail": self.log_tail,
        }


def run_duration(status: dict[str, Any], ended: float | None) -> float | None:
    """Seconds of earlier launches (`elapsed_before`) plus this launch's, from `segment_started`."""
    segment = _number(status.get("segment_started")) or _number(status.get("started")) or _number(status.get("created"))
    if segment is None:
        return None
    before = _number(status.get("elapsed_before")) or 0.0
    return before + max(0.0, (ended or time.time()) - segment)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def runs_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The directory a listing names: --runs-dir, else where new runs go (runner.runs_home.runs_dir)."""
    return runs_dir(explicit)


# --- liveness ----------------------------------------------------------------------------------------
def process_alive(status: dict[str, Any], run: RunDir | None = None) -> bool | None:
    """Whether the supervisor status.json names still exists (None: cannot tell, e.g. another host);
    with `run`, it must also be that run's supervisor (`-m runner.launch RUN_DIR`). Only for runs no
    lock speaks for (starting, or made before locks existed)."""
    import psutil

    if status.get("host") and status["host"] != socket.gethostname():
        return None
    pid = status.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        proc = psutil.Process(pid)
        created = _number(status.get("pid_create_time"))
        if created is not None and abs(proc.create_time() - created) > 1.0:
            return False  # the pid was reused by an unrelated process
        if run is not None and not names_run(proc.cmdline(), SUPERVISOR_MODULE, str(run.path.resolve())):
            return False  # not this run's supervisor (a stale or forged status.json)
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def run_state(run: RunDir, status: dict[str, Any] | None = None) -> RunState:
    """The run's real state: its locks first (runner.liveness), then status.json."""
    from runner.liveness import holders

    status = run.read_status() if status is None else status
    if status.get("slurm"):  # a SLURM job: its processes are on the cluster's nodes; ask the scheduler
        from runner.slurm import effective_state as slurm_state

        return RunState(slurm_state(status))
    recorded = status.get("state")
    locks = holders(run)
    if locks.alive:
        if recorded in FINAL_STATES and not locks.trainer:
            return RunState(recorded)  # the supervisor is settling after the trainer recorded the end
        return RunState(recorded if recorded in ACTIVE_STATES else "running", locks.unsupervised)
    if recorded not in ACTIVE_STATES:
        return RunState(recorded if recorded in FINAL_STATES else "lost")
    # No lock held, yet the status says active. On another host its locks may not be visible from
    # here: believe the file. Otherwise it is the moment between `start` and the supervisor taking
    # its lock (the pid status names is alive), a run from before locks existed, or a lost run.
    if status.get("host") not in (None, socket.gethostname()):
        return RunState(recorded)
    if recorded == "starting" or not locks.known:
        alive = process_alive(status, run)
        if alive:
            return RunState(recorded)
        created = (_number(status.get("segment_started")) or _number(status.get("created"))
                   or _number(status.get("updated")) or 0.0)
        if alive is None and not status.get("pid") and time.time() - created <= STARTUP_GRACE_S:
            return RunState(recorded)
    return RunState("lost")


def effective_state(run: RunDir, status: dict[str, Any] | None = None) -> str:
    """The run's state as one word (see run_state)."""
    return run_state(run, status).state


# --- processes --------------------------------------------------------------------------------------
def names_run(cmdline: list[str], module: str, run_path: str) -> bool:
    """Whether a command line has `-m MODULE RUN_PATH` anywhere (accelerate's has `-m runner.train
    RUN_DIR` after its own -m)."""
    for i, arg in enumerate(cmdline[:-2]):
        if arg == "-m" and cmdline[i + 1] == module and _same_path(cmdline[i + 2], run_path):
            return True
    return False


def _same_path(arg: str, run_path: str) -> bool:
    try:
        return str(Path(arg).resolve()) == run_path
    except (OSError, RuntimeError):
        return False


def is_trainer_of(cmdline: list[str], run_path: str | None = None) -> bool:
    """Whether a command line runs the training entry point (for `run_path`, when given). The
    module is the one after the first -m: the launcher's argv names runner.train too, later."""
    if "-m" not in cmdline:
        return False
    rest = cmdline[cmdline.index("-m") + 1:]
    if rest[:1] != [TRAIN_MODULE]:
        return False
    return run_path is None or (len(rest) > 1 and _same_path(rest[1], run_path))


def run_processes(run_path: str | os.PathLike[str], pgid: int | None = None) -> dict[int, bool]:
    """Every live process of a run, each pid mapped to whether it is a trainer.

    A process is the run's when its command line names this run directory after `-m runner.train`
    (trainers, and accelerate's launcher above them) or `-m runner.launch` (the supervisor), or
    when it is in `pgid`, a process group the caller has verified (see `verified_group`). torch's
    multi-process launcher starts each trainer in a session of its own, outside the group: the
    command line finds those, orphaned or not.
    """
    import psutil

    run_path = str(Path(run_path).resolve())
    found = {}
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            cmdline = proc.info["cmdline"] or []
            trainer = is_trainer_of(cmdline, run_path)
            ours = trainer or names_run(cmdline, TRAIN_MODULE, run_path) or names_run(cmdline, SUPERVISOR_MODULE, run_path)
            if ours or (pgid and os.getpgid(proc.pid) == pgid):
                found[proc.pid] = trainer
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return found


def run_pids(run_path: str | os.PathLike[str], pgid: int | None = None) -> list[int]:
    """Every live process of a run (see `run_processes`)."""
    return list(run_processes(run_path, pgid))


def verified_group(run: RunDir, status: dict[str, Any]) -> tuple[int | None, str]:
    """status.json's process group, if it really is this run's supervisor's: the group leader is
    status's pid, created when the launcher recorded, running `-m runner.launch RUN_DIR`. Else
    (None, why), and the group must not be signalled."""
    import psutil

    pgid, pid, created = status.get("pgid"), status.get("pid"), _number(status.get("pid_create_time"))
    if not isinstance(pgid, int) or pgid <= 1:
        return None, "" if pgid is None else f"status.json names an invalid process group {pgid!r}"
    if pid != pgid or created is None:
        return None, f"status.json names process group {pgid}, which this run's launcher did not record"
    try:
        leader = psutil.Process(pgid)
        matches = (abs(leader.create_time() - created) <= 1.0
                   and names_run(leader.cmdline(), SUPERVISOR_MODULE, str(run.path.resolve())))
    except psutil.Error:
        return None, ""  # gone: nothing to signal through it
    if not matches:
        return None, f"status.json names process group {pgid}, which is not this run's (not signalled)"
    return pgid, ""


# --- listing ---------------------------------------------------------------------------------------
def info(run: RunDir) -> RunInfo:
    status = run.read_status()
    current = run_state(run, status)
    step = total = loss = None
    for event in reversed(newest_events(run.events)):
        if step is None and isinstance(event.get("step"), int):
            step = int(event["step"])
        if total is None and event.get("total_steps"):
            total = int(event["total_steps"])
        if loss is None and event.get("type") == "log" and isinstance(event.get("loss"), (int, float)):
            loss = float(event["loss"])
        if step is not None and total is not None and loss is not None:
            break
    ended = _number(status.get("ended"))
    if current.state == "lost":
        ended = _number(status.get("updated"))
    tail = tail_text(run.log, 15) if current.state in ("lost", "failed") else ""
    started = _number(status.get("started")) or _number(status.get("created"))
    preset = status.get("preset") if isinstance(status.get("preset"), str) else None
    return RunInfo(run, current.state, preset, step, total, loss, started, ended, status, tail, current.unsupervised)


@dataclass
class Listing:
    runs: list[RunInfo]  # oldest first
    removed: list[Path]  # index entries whose directory is gone (see runner.runs_home.forget)


def listing(root: str | os.PathLike[str] | None = None) -> Listing:
    """Every known run (runner.runs_home.scan), or with `root` only those directly under it."""
    from runner.runs_home import scan

    found = scan()
    paths = found.present
    removed = found.removed
    if root is not None:
        base = Path(os.path.abspath(root))
        children = []
        try:
            children = [p for p in base.iterdir() if (p / "config.toml").is_file()]
        except OSError:
            pass
        paths = [p for p in paths if p.parent == base] + children
        removed = [p for p in removed if p.parent == base]
    unique = {str(Path(os.path.abspath(p))): p for p in paths}
    runs = [info(RunDir(Path(key))) for key in unique]
    return Listing(sorted(runs, key=lambda r: (r.started or 0, r.name)), removed)


def list_runs(root: str | os.PathLike[str] | None = None) -> list[RunInfo]:
    """Every known run (or those under `root`), oldest first."""
    return listing(root).runs


def resolve(spec: str, root: str | os.PathLike[str] | None = None) -> RunDir:
    """RUN as a directory path, a run name, a unique name prefix, or 'latest'. A run given by its
    path is recorded in the index, so a moved or copied run is found by name afterwards."""
    from runner.runs_home import record

    direct = Path(spec).expanduser()
    if (direct / "config.toml").is_file():
        run = RunDir(direct.resolve())
        try:
            record(run.path)
        except OSError:
            pass  # a read-only state dir: the run is still usable by path
        return run
    where = f" in {Path(os.path.abspath(root))}" if root is not None else " (tunedeck runs lists them)"
    runs = list_runs(root)
    if spec == "latest":
        if not runs:
            raise RunNotFound(f"no runs{where}")
        return runs[-1].run
    exact = [r for r in runs if r.name == spec]
    if exact:
        return exact[-1].run
    matches = [r for r in runs if r.name.startswith(spec)]
    if len(matches) == 1:
        return matches[0].run
    if len(matches) > 1:
        names = ", ".join(r.name for r in matches[:8])
        raise RunNotFound(f"{spec!r} matches {len(matches)} runs{where}: {names}; give more of the name")
    hint = did_you_mean(spec, [r.name for r in runs])
    raise RunNotFound(f"no run {spec!r}{where}" + (f"; did you mean {hint!r}?" if hint else
                                                   " (give a run directory, a run name, a prefix or 'latest')"))
