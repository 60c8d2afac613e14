"""What the TUI asks of the runner about runs: launch, stop, kill, resume, list, resolve.

Thin wrappers over runner.launch / runner.stop / runner.registry (the run directory on disk is
the only interface with a trainer), returning a message instead of raising for expected refusals.
Blocking calls (stop waits for the checkpoint) must run in worker threads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.rundir import ACTIVE_STATES, RunDir
from runner.schema import Config

KILL_GRACE_S = 0.0  # kill: no grace, SIGKILL at once
STOP_GRACE_S = 60.0  # stop: time to write the checkpoint before escalating to SIGKILL


@dataclass
class Outcome:
    ok: bool
    message: str
    run: RunDir | None = None


def launch(config: Config, preset_name: str, runs_dir: str | Path | None = None) -> Outcome:
    """Create the run directory and start it detached (it outlives the TUI)."""
    from runner import launch as launcher
    from runner.problems import ConfigError
    from runner.target import target_cuda

    cuda = target_cuda(config, launcher.detect_cuda()[0])
    try:
        run = launcher.prepare(config, preset_name=preset_name, runs_dir=runs_dir, cuda=cuda)
        launcher.start(run)
    except OSError as exc:
        return Outcome(False, f"could not start the run: {exc}")
    except ConfigError as exc:  # e.g. report_to names a tracker that is not installed
        return Outcome(False, f"not started: {exc}")
    return Outcome(True, f"started {run.name}", run)


def preview(config: Config, preset_name: str, runs_dir: str | Path | None = None) -> tuple[list[str], Path, bool]:
    """(argv, run directory it would get, CUDA?) without creating anything."""
    import time

    from runner import launch as launcher
    from runner.target import target_cuda

    cuda = target_cuda(config, launcher.detect_cuda()[0])
    base = Path(runs_dir if runs_dir is not None else config.training.output_dir)
    path = (base / f"{preset_name}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    return launcher.build_argv(config, path, cuda=cuda), path, cuda


def state_of(run: RunDir) -> str:
    from runner.registry import effective_state

    return effective_state(run.read_status())


def stop(run: RunDir, kill: bool = False) -> Outcome:
    """Graceful stop (SIGTERM, the trainer checkpoints; SIGKILL after the grace period) or kill now."""
    from runner.stop import stop as stop_run

    result = stop_run(run, grace=KILL_GRACE_S if kill else STOP_GRACE_S)
    return Outcome(result.signalled and not result.leftover_pids, result.message, run)


def resume(run: RunDir) -> Outcome:
    """Continue from the latest checkpoint in the same directory (refused while running or without one)."""
    from runner import launch as launcher

    state = state_of(run)
    if state in ACTIVE_STATES:
        return Outcome(False, f"{run.name} is still {state}; stop it first", run)
    checkpoint = run.latest_checkpoint()
    if checkpoint is None:
        return Outcome(False, f"{run.name} has no checkpoint to resume from", run)
    launcher.start(run, resume=True)
    return Outcome(True, f"resuming {run.name} from {checkpoint.name}", run)


def run_pids(run: RunDir) -> list[int]:
    """The run's live processes (its group and every trainer rank), for the GPU panel."""
    from runner.registry import run_pids as live_pids

    status = run.read_status()
    if status.get("state") not in ACTIVE_STATES:
        return []
    return live_pids(run.path, int(status["pgid"]) if status.get("pgid") else None)


def command_line(run: RunDir) -> list[str]:
    try:
        return list(json.loads(run.command.read_text(encoding="utf-8")).get("argv", []))
    except (OSError, ValueError):
        return []


def load_config(run: RunDir) -> Config | None:
    from runner import presets

    return presets.load(run.config).config


def resolve(spec: str, runs_dir: str | Path | None = None) -> tuple[RunDir | None, str]:
    """RUN (path, name, prefix, 'latest') to a run directory, or None and why."""
    from runner.registry import RunNotFound, resolve as resolve_run

    try:
        return resolve_run(spec, runs_dir), ""
    except RunNotFound as exc:
        return None, str(exc)


def announce_end(app: Any, run: RunDir, state: str) -> None:
    """Bell and a notification once per run end, whichever screen noticed it first."""
    seen: set = app.__dict__.setdefault("_announced_runs", set())
    key = (str(run.path), run.read_status().get("started"))
    if key in seen:
        return
    seen.add(key)
    app.bell()
    severity = "error" if state in ("failed", "lost") else "information"
    app.notify(f"{run.name} {state}", title="Run ended", severity=severity, timeout=8)
