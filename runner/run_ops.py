"""The runs service: what the CLI and the TUI do to runs, one function each, with no UI in it.

    plan(config, preset_name, runs_dir)    the argv and the exact run directory a launch will create
    launch(config, preset_name, ...)       create that directory (runner.launch.prepare) and start it
    resume(run, overrides, force)          every check, then continue from the latest checkpoint
    stop(run, kill)                        graceful stop with escalation (runner.stop)
    state_of(run), run_pids(run), load_config(run), resolve(spec)

Expected refusals come back as an Outcome with a message (never an exception), so a CLI prints it
and a screen notifies it. Blocking calls (stop waits for the checkpoint) belong in worker threads.

Resume semantics (README "Resuming"): a run resumes from its latest checkpoint in the same
directory, keeping its first start time and adding each launch's time to its duration. A finished
run is refused at once. A config changed since the checkpoint is refused unless `force`; even
then, fields whose values live in the checkpoint's optimizer and LR-scheduler state
(FROZEN_ON_RESUME) are refused by name: the checkpoint would silently override them, so config.toml
would claim values the run does not use. Start a new run to train with those.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from runner.rundir import ACTIVE_STATES, RunDir, RunDirError
from runner.schema import Config

KILL_GRACE_S = 0.0  # kill: no grace, SIGKILL at once
STOP_GRACE_S = 60.0  # stop: time to write the checkpoint before escalating to SIGKILL
CHECKPOINT_CONFIG = "tunedeck-config.toml"  # the config a checkpoint was trained with (beside tunedeck.json)

# Restored from the checkpoint (optimizer state, LR scheduler state, step budget) whatever the config says.
FROZEN_ON_RESUME = (
    "training.learning_rate", "training.lr_scheduler_type", "training.lr_scheduler_kwargs",
    "training.warmup_steps", "training.warmup_ratio", "training.optim", "training.optim_args",
    "training.weight_decay", "training.adam_beta1", "training.adam_beta2", "training.adam_epsilon",
    "training.max_steps", "training.num_train_epochs", "training.per_device_train_batch_size",
    "training.gradient_accumulation_steps",
)


@dataclass
class Outcome:
    ok: bool
    message: str
    run: RunDir | None = None
    details: list[str] = field(default_factory=list)  # further lines (problems, changed fields)


# --- new runs ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    argv: list[str]
    path: Path  # exactly the directory `launch(..., plan=this)` creates
    cuda: bool
    problem: str = ""  # why no run directory can be made there ("" when it can)


def plan(config: Config, preset_name: str, runs_dir: str | Path | None = None, now: datetime | None = None) -> Plan:
    """What a launch would create, without creating anything: its argv and run directory."""
    from runner import launch as launcher
    from runner.rundir import check_runs_dir, planned_name
    from runner.runs_home import runs_dir as where

    from runner.target import target_cuda

    cuda = target_cuda(config, launcher.detect_cuda()[0])
    base = where(runs_dir, config)
    problem = ""
    try:
        check_runs_dir(base)
    except RunDirError as exc:
        problem = str(exc)
    name = planned_name(preset_name, now)
    path, n = base / name, 2
    while path.exists():
        path, n = base / f"{name}-{n}", n + 1
    return Plan(launcher.build_argv(config, path, cuda=cuda), path, cuda, problem)


def launch(config: Config, preset_name: str, runs_dir: str | Path | None = None, *,
           planned: Plan | None = None) -> Outcome:
    """Create the run directory (exactly `planned.path` when given) and start it detached."""
    from runner import launch as launcher
    from runner.problems import ConfigError

    from runner.target import target_cuda

    cuda = planned.cuda if planned is not None else target_cuda(config, launcher.detect_cuda()[0])
    try:
        try:
            run = launcher.prepare(config, preset_name=preset_name, runs_dir=runs_dir, cuda=cuda,
                                   run_dir=planned.path if planned is not None else None)
        except FileExistsError:  # taken since the plan was shown (a launch in the same second)
            return Outcome(False, f"{planned.path} was created meanwhile by another launch; launch again")
        launcher.start(run)
    except RunDirError as exc:
        return Outcome(False, f"not started ({exc.reason}): {exc}")
    except ConfigError as exc:  # e.g. report_to names a tracker that is not installed
        return Outcome(False, f"not started: {exc}")
    except OSError as exc:
        return Outcome(False, f"could not start the run: {exc}")
    return Outcome(True, f"started {run.name}", run)


# --- existing runs -----------------------------------------------------------------------------------
def state_of(run: RunDir) -> str:
    from runner.registry import effective_state

    return effective_state(run)


def is_finished(run: RunDir, status: dict[str, Any] | None = None) -> bool:
    """Whether the run completed (status.json, or its newest terminal event when the file is damaged)."""
    from runner.events import TERMINAL_TYPES, newest_events

    status = run.read_status() if status is None else status
    if status.get("state") == "finished":
        return True
    if status.get("state") in ("stopped", "failed", *ACTIVE_STATES):
        return False
    terminal = [e for e in newest_events(run.events, 64_000) if e.get("type") in TERMINAL_TYPES]
    return bool(terminal) and terminal[-1]["type"] == "run_finished"


def resumable(run: RunDir) -> bool:
    """Whether resume is worth offering: not live, not finished, and a checkpoint to resume from."""
    from runner.registry import run_state

    status = run.read_status()
    return not run_state(run, status).active and not is_finished(run, status) and run.latest_checkpoint() is not None


def checkpoint_digest(checkpoint: Path) -> str | None:
    try:
        return json.loads((checkpoint / "tunedeck.json").read_text())["config_digest"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def frozen_changes(checkpoint: Path, config: Config) -> list[str]:
    """'key: old -> new' for each FROZEN_ON_RESUME field that differs from the checkpoint's config
    ([] when the checkpoint carries no config, i.e. was saved by an older tunedeck)."""
    from runner import presets
    from runner.schema import FIELDS_BY_KEY, get_value

    saved_file = checkpoint / CHECKPOINT_CONFIG
    if not saved_file.is_file():
        return []
    saved = presets.load(saved_file).config
    if saved is None:
        return []
    changed = []
    for key in FROZEN_ON_RESUME:
        if key in FIELDS_BY_KEY and get_value(saved, key) != get_value(config, key):
            changed.append(f"{key}: {get_value(saved, key)!r} -> {get_value(config, key)!r}")
    return changed


def resume(run: RunDir, overrides: Sequence[str] = (), force: bool = False) -> Outcome:
    """Continue `run` from its latest checkpoint, after every check (see the module docstring)."""
    from runner import launch as launcher
    from runner import presets
    from runner.liveness import holders
    from runner.registry import run_state

    status = run.read_status()
    current = run_state(run, status)
    if current.active:
        return Outcome(False, f"{run.name} is still {current.label}; stop it first (tunedeck stop {run.name})", run)
    if holders(run).alive:  # recorded as ended, but its processes have not exited yet
        return Outcome(False, f"{run.name} is {current.label} but its processes are still exiting; "
                              "try again in a moment", run)
    if is_finished(run, status):
        return Outcome(False, f"{run.name} already finished; there is nothing to resume (clone its config "
                              "into a new run to train more)", run)
    checkpoint = run.latest_checkpoint()
    if checkpoint is None:
        return Outcome(False, f"{run.name} has no checkpoint to resume from (in {run.checkpoints})", run)
    loaded = presets.load(run.config, list(overrides))
    if loaded.config is None or loaded.errors:
        return Outcome(False, f"cannot resume {run.name}: its config has errors", run,
                       [p.format() for p in loaded.problems])
    saved = checkpoint_digest(checkpoint)
    digest = presets.config_digest(loaded.config)
    if saved is not None and saved != digest:
        if not force:
            return Outcome(False, f"the config of {run.name} changed since {checkpoint.name} was saved (digest "
                                  f"{saved} -> {digest}); resuming would mix two setups. Start a new run, or pass "
                                  "--force to resume anyway.", run)
        frozen = frozen_changes(checkpoint, loaded.config)
        if frozen:
            return Outcome(False, f"cannot resume {run.name} with a changed optimizer or schedule, even with --force: "
                                  f"{checkpoint.name} restores the optimizer and learning-rate schedule state, so "
                                  "these would not take effect: " + "; ".join(frozen)
                                  + ". Start a new run to train with them.", run, frozen)
    if overrides:
        presets.save(loaded.config, run.config)
    if slurm_job(run):
        from runner import slurm

        try:
            job_id = slurm.resume(run)
        except slurm.SlurmError as exc:
            return Outcome(False, f"not resubmitted: {exc}", run)
        return Outcome(True, f"resubmitted {run.name} as SLURM job {job_id}; it continues from {checkpoint.name}", run)
    try:
        launcher.start(run, resume=True)
    except launcher.RunBusy as exc:
        return Outcome(False, str(exc), run)
    return Outcome(True, f"resuming {run.name} from {checkpoint.name}", run)


def slurm_job(run: RunDir) -> str | None:
    """The SLURM job id of a run submitted with `run --slurm` (None for runs started here)."""
    from runner.slurm import slurm_info

    info = slurm_info(run.read_status())
    return str(info["job_id"]) if info else None


def stop(run: RunDir, kill: bool = False, grace: float | None = None) -> Outcome:
    """Graceful stop (SIGTERM, the trainer checkpoints; SIGKILL after the grace period) or kill now.
    A SLURM run is stopped through the scheduler (runner.slurm.stop), then its job is cancelled."""
    from runner.stop import stop as stop_run

    if slurm_job(run):
        from runner import slurm

        try:
            result = slurm.stop(run, grace=0.0 if kill else (STOP_GRACE_S if grace is None else grace))
        except slurm.SlurmError as exc:
            return Outcome(False, str(exc), run)
        return Outcome(result.stopped, result.message, run)

    result = stop_run(run, grace=KILL_GRACE_S if kill else (STOP_GRACE_S if grace is None else grace))
    return Outcome(result.signalled and not result.leftover_pids, result.message, run)


def run_pids(run: RunDir) -> list[int]:
    """The run's live processes (its verified group and every process naming it), for the GPU panel."""
    from runner.registry import run_pids as live_pids
    from runner.registry import run_state, verified_group

    status = run.read_status()
    if not run_state(run, status).active:
        return []
    return live_pids(run.path, verified_group(run, status)[0])


def load_config(run: RunDir) -> Config | None:
    from runner import presets

    return presets.load(run.config).config


def resolve(spec: str, runs_dir: str | Path | None = None) -> tuple[RunDir | None, str]:
    """RUN (path, name, prefix, 'latest') to a run directory, or None and why."""
    from runner.registry import RunNotFound
    from runner.registry import resolve as resolve_run

    try:
        return resolve_run(spec, runs_dir), ""
    except RunNotFound as exc:
        return None, str(exc)
