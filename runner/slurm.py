"""Runs on SLURM: submit a prepared run directory as a batch job, read the scheduler's view of it,
stop it gracefully through the scheduler and resubmit it from its checkpoint.

The run directory is the same as for a run started here (config.toml, status.json, events.jsonl,
output.log, checkpoints/), plus `job.sbatch` (the script submitted) and a "slurm" entry in
status.json: {"job_id", "submitted", "script", "options", "history": [earlier job ids]}. The trainer
writes its own progress there as usual; the scheduler is asked only for what the run cannot say
(queued and why, which nodes, cancelled or timed out before the trainer could record an end).

Every SLURM tool is run as an argv list (never through a shell) with a timeout; a missing tool, an
unreachable controller or a rejected job is a SlurmError with one line naming the cause.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from runner.export.sbatch import JobOptions, sbatch_script, with_options
from runner.rundir import FINAL_STATES, RunDir
from runner.schema import Config

TOOL_TIMEOUT_S = 30.0
SCRIPT_NAME = "job.sbatch"
PENDING = ("PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED")
RUNNING = ("RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING")
# Ended before the trainer could record an end: what the run is then shown as.
ENDED = {"COMPLETED": "finished", "FAILED": "failed", "CANCELLED": "stopped", "TIMEOUT": "failed",
         "NODE_FAIL": "failed", "OUT_OF_MEMORY": "failed", "PREEMPTED": "stopped", "BOOT_FAIL": "failed",
         "DEADLINE": "failed", "REVOKED": "stopped", "SPECIAL_EXIT": "failed"}
_CACHE_S = 2.0
_cache: dict[str, tuple[float, "JobState | None"]] = {}


class SlurmError(Exception):
    """A one-line reason SLURM could not do what was asked."""


@dataclass(frozen=True)
class JobState:
    state: str  # SLURM's: PENDING, RUNNING, COMPLETED, CANCELLED, TIMEOUT, ...
    reason: str = ""  # why pending (Resources, Priority, ...) or why it ended
    nodes: str = ""  # the allocation (n[1-2]), once it has one
    exit_code: str = ""
    command: str = ""  # the batch script SLURM runs (squeue's %o), to tell the job is this run's

    def describe(self) -> str:
        text = self.state
        if self.state in PENDING and self.reason and self.reason != "None":
            text += f" ({self.reason})"
        elif self.nodes and self.state in RUNNING:
            text += f" on {self.nodes}"
        elif self.reason and self.reason != "None":
            text += f" ({self.reason})"
        return text


# --- running the tools --------------------------------------------------------------------------
def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SlurmError(f"{name} not found on PATH: SLURM's client tools are needed (run this on a login node)")
    return path


def _clean(text: str) -> str:
    """The last meaningful line of a tool's error output, without SLURM's 'sbatch: error: ' prefixes."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    errors = [line for line in lines if "error" in line.lower()] or lines
    line = errors[-1]
    line = re.sub(r"^(\w+: )?(error: )+", "", line, flags=re.I)
    return "".join(ch if ch.isprintable() else "?" for ch in line)[:300]


def call(argv: list[str], *, env: dict[str, str] | None = None, cwd: str | None = None) -> str:
    """Run a SLURM tool; its standard output, or SlurmError naming why it failed."""
    argv = [tool(argv[0]), *argv[1:]]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, env=env, cwd=cwd,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{Path(argv[0]).name} did not answer in {TOOL_TIMEOUT_S:g}s: is slurmctld reachable?") from None
    except OSError as exc:
        raise SlurmError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        raise SlurmError(_explain(Path(argv[0]).name, _clean(done.stderr) or _clean(done.stdout)
                                  or f"exit status {done.returncode}"))
    return done.stdout


def _explain(name: str, message: str) -> str:
    low = message.lower()
    if "unable to contact slurm controller" in low or "connection refused" in low or "socket timed out" in low \
            or "communication connection failure" in low or "zero bytes were transmitted" in low:
        return f"SLURM is not reachable ({name}: {message})"
    if "invalid partition" in low:
        return f"the partition does not exist ({name}: {message})"
    if "requested node configuration is not available" in low or "more processors requested" in low \
            or "node count specification invalid" in low or "invalid generic resource" in low \
            or "invalid gres" in low or "requested time limit is invalid" in low:
        return f"the job was rejected for its resources ({name}: {message})"
    if "invalid account" in low:
        return f"the account is not valid here ({name}: {message})"
    return f"{name}: {message}"


# --- the scheduler's view -------------------------------------------------------------------------
def job_state(job_id: str, *, fresh: bool = False) -> JobState | None:
    """SLURM's state of a job: squeue (which keeps ended jobs for MinJobAge), else sacct.
    None when SLURM no longer knows the job; SlurmError when it cannot be asked."""
    now = time.monotonic()
    cached = _cache.get(job_id)
    if cached is not None and not fresh and now - cached[0] < _CACHE_S:
        return cached[1]
    state = _from_squeue(job_id)
    if state is None:
        state = _from_sacct(job_id)
    _cache[job_id] = (now, state)
    return state


def _from_squeue(job_id: str) -> JobState | None:
    try:
        out = call(["squeue", "--noheader", "--states=all", "--jobs", job_id, "--format=%T|%r|%N|%o"])
    except SlurmError as exc:
        if "invalid job id" in str(exc).lower():
            return None
        raise
    for line in out.splitlines():
        parts = line.strip().split("|", 3)
        if len(parts) == 4 and parts[0]:
            return JobState(parts[0].split()[0], parts[1], parts[2], command=parts[3])
    return None


def _from_sacct(job_id: str) -> JobState | None:
    """Accounting, where the cluster keeps it (without accounting storage sacct knows nothing)."""
    try:
        out = call(["sacct", "--noheader", "--parsable2", "--allocations", "--jobs", job_id,
                    "--format=State,Reason,NodeList,ExitCode"])
    except SlurmError:
        return None
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 4 and parts[0]:
            return JobState(parts[0].split()[0], parts[1], parts[2], parts[3])
    return None


def slurm_info(status: dict[str, Any]) -> dict[str, Any] | None:
    info = status.get("slurm")
    return info if isinstance(info, dict) and re.fullmatch(r"\d+(_\d+)?", str(info.get("job_id", ""))) else None


def effective_state(status: dict[str, Any]) -> str:
    """A SLURM run's state: its own record once final, else what the scheduler says of its job."""
    recorded = status.get("state") or "starting"
    info = slurm_info(status)
    if recorded in FINAL_STATES or info is None:
        return recorded
    try:
        job = job_state(str(info["job_id"]))
    except SlurmError:
        return recorded  # the controller cannot be asked just now: keep what the run says
    if job is None:
        return "lost"  # SLURM forgot the job and the run never recorded an end
    if job.state in PENDING:
        return "starting"
    if job.state in RUNNING:
        return recorded
    if status.get("stop_requested") and job.state in ("CANCELLED", "COMPLETED"):
        return "stopped"
    if job.state == "COMPLETED":
        return "lost"  # the job ended well but nothing recorded the run's end
    return ENDED.get(job.state, "failed")


def scheduler_line(status: dict[str, Any]) -> str | None:
    """'SLURM job 12: RUNNING on n[1-2]' for `runs`, `logs` and the monitor; None for other runs."""
    info = slurm_info(status)
    if info is None:
        return None
    try:
        job = job_state(str(info["job_id"]))
    except SlurmError as exc:
        return f"SLURM job {info['job_id']}: state unknown ({exc})"
    where = job.describe() if job is not None else "no longer known to SLURM"
    return f"SLURM job {info['job_id']}: {where}"


# --- submitting ----------------------------------------------------------------------------------
def sbatch_argv(script: Path) -> list[str]:
    return ["sbatch", "--parsable", str(script)]


def preview(config: Config, preset_name: str, options: JobOptions, run_dir: Path,
            resume: bool = False) -> tuple[list[str], str]:
    """(the sbatch command, the script) exactly as submit() would use them, creating nothing."""
    script = sbatch_script(config, name=preset_name, run_dir=run_dir, python=sys.executable, options=options,
                           output=str(run_dir / "output.log"), resume=resume)
    return sbatch_argv(run_dir / SCRIPT_NAME), script


def shared_runs_dir(explicit: str | os.PathLike[str] | None, config: Config) -> Path:
    """Where a SLURM run goes: --runs-dir, $TUNEDECK_RUNS_DIR or training.output_dir as for any run, but
    by default ./runs under the working directory (which, on a cluster, is on the filesystem the
    nodes share) rather than the runs home in ~/.local/state, which the nodes may not see."""
    from runner.runs_home import RUNS_DIR_ENV

    chosen = explicit or os.environ.get(RUNS_DIR_ENV) or (config.training.output_dir or "").strip()
    return Path(os.path.abspath(Path(chosen).expanduser() if chosen else Path.cwd() / "runs"))


def plan(config: Config, preset_name: str, options: JobOptions = JobOptions(),
         runs_dir: str | os.PathLike[str] | None = None) -> tuple[Path, list[str], str]:
    """(the run directory, the sbatch command, the script) a submission would use, creating nothing:
    what the launch dialog shows before submitting (submit(run_dir=...) then uses exactly these)."""
    from runner.rundir import planned_name

    base = shared_runs_dir(runs_dir, config)
    name = planned_name(preset_name)
    path, n = base / name, 2
    while path.exists():
        path, n = base / f"{name}-{n}", n + 1
    argv, script = preview(with_options(config, options), preset_name, options, path)
    return path, argv, script


def submit(config: Config, *, preset_name: str, options: JobOptions = JobOptions(),
           runs_dir: str | os.PathLike[str] | None = None, run_dir: str | os.PathLike[str] | None = None) -> RunDir:
    """Prepare the run directory (see shared_runs_dir), submit its job, record the job id; nothing is
    left behind on failure."""
    from runner import launch
    from runner.target import target_cuda

    tool("sbatch")  # before creating anything
    job_config = with_options(config, options)
    runs_dir = shared_runs_dir(runs_dir, config)
    run = launch.prepare(job_config, preset_name=preset_name, runs_dir=runs_dir, run_dir=run_dir,
                         cuda=target_cuda(job_config))
    try:
        _submit(run, job_config, preset_name, options)
    except BaseException:
        from runner.runs_home import forget

        shutil.rmtree(run.path, ignore_errors=True)
        forget(run.path)  # prepare() recorded it in the runs index: no trace of a job that never was
        raise
    return run  # recorded in the runs index by prepare(): every login finds it


def _submit(run: RunDir, config: Config, preset_name: str, options: JobOptions, history: list[str] | None = None,
            resume: bool = False) -> str:
    from runner.atomic import atomic_write_text
    from runner.launch import run_env

    try:
        argv, script = preview(config, preset_name, options, run.path, resume=resume)
    except ValueError as exc:  # a value that cannot go on an #SBATCH line
        raise SlurmError(str(exc)) from None
    path = run.path / SCRIPT_NAME
    atomic_write_text(path, script)
    env, _ = run_env()
    out = call(argv, env=env, cwd=str(run.path))
    job_id = out.strip().split(";")[0]
    if not re.fullmatch(r"\d+(_\d+)?", job_id):
        raise SlurmError(f"sbatch gave no job id (it printed {_clean(out)!r})")
    now = time.time()
    run.update_status(state="starting", started=now, exit_code=None, reason=None, message=None, suggestion=None,
                      ended=None, stop_requested=None, pid=None, pgid=None,
                      slurm={"job_id": job_id, "submitted": now, "script": str(path), "options": asdict(options),
                             "history": list(history or [])})
    _cache.pop(job_id, None)
    return job_id


def resume(run: RunDir) -> str:
    """Resubmit a stopped/failed SLURM run with the same options; its trainers continue from the
    latest checkpoint in the same directory. Returns the new job id."""
    from runner import presets

    status = run.read_status()
    info = slurm_info(status) or {}
    fields = JobOptions.__dataclass_fields__
    options = JobOptions(**{k: v for k, v in (info.get("options") or {}).items() if k in fields})
    config = presets.require(run.config).config
    history = [*info.get("history", []), str(info["job_id"])] if info.get("job_id") else []
    return _submit(run, config, status.get("preset") or run.name, options, history, resume=True)


# --- stopping --------------------------------------------------------------------------------------
@dataclass
class StopResult:
    message: str
    stopped: bool  # the job is gone from the queue


def stop(run: RunDir, grace: float = 60.0, poll: float = 0.5) -> StopResult:
    """SIGTERM to every process of the job's steps (the trainers save a checkpoint and exit), wait for
    the run to record its end, then cancel whatever is left of the job."""
    status = run.read_status()
    info = slurm_info(status)
    if info is None:
        raise SlurmError(f"{run.name} is not a SLURM run")
    job_id = str(info["job_id"])
    job = job_state(job_id, fresh=True)
    if job is None or job.state not in PENDING + RUNNING:
        return StopResult(f"{run.name}: SLURM job {job_id} is not running ({job.describe() if job else 'gone'})", True)
    # status.json is data: signal the job only if SLURM says it runs this run's own script.
    script = str(run.path / SCRIPT_NAME)
    if job.command and os.path.abspath(job.command) != os.path.abspath(script):
        raise SlurmError(f"status.json names SLURM job {job_id}, which runs {job.command!r}, not this run's "
                         f"{script}: not signalled")
    run.update_status(state="stopping", stop_requested=time.time())
    if job.state in PENDING:
        call(["scancel", job_id])
        run.update_status(state="stopped", reason="cancelled while queued", message="cancelled before it started",
                          ended=time.time())
        return StopResult(f"{run.name}: SLURM job {job_id} cancelled while queued", _wait_gone(job_id, 60.0, poll))
    # Without --batch/--full the signal goes to the job steps (srun's tasks and everything they
    # started: accelerate and its trainers), not to the batch shell, which then records the end.
    call(["scancel", "--signal=TERM", job_id])
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if run.read_status().get("state") in FINAL_STATES:
            break
        job = job_state(job_id, fresh=True)
        if job is None or job.state not in PENDING + RUNNING:
            break
        time.sleep(poll)
    state = run.read_status().get("state")
    gone = _wait_gone(job_id, 30.0, poll)
    if not gone:
        call(["scancel", job_id])
        gone = _wait_gone(job_id, 120.0, poll)
    if state not in FINAL_STATES:
        run.update_status(state="stopped", reason="stop requested", message="cancelled through SLURM",
                          ended=time.time())
    checkpoint = run.latest_checkpoint()
    where = f"; checkpoint {checkpoint.name}" if checkpoint else ""
    return StopResult(f"{run.name}: SLURM job {job_id} stopped{where}", gone)


def _wait_gone(job_id: str, timeout: float, poll: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            job = job_state(job_id, fresh=True)
        except SlurmError:
            job = JobState("UNKNOWN")
        if job is None or job.state not in PENDING + RUNNING:
            return True
        time.sleep(poll)
    return False


# --- inside the job ------------------------------------------------------------------------------
def settle(run: RunDir, code: int) -> int:
    """Run by the batch script after srun: record an end the trainer could not (crash, kill)."""
    from runner.diagnose import diagnose_text
    from runner.events import EventWriter
    from runner.launch import tail_text

    status = run.read_status()
    if status.get("state") not in FINAL_STATES:
        if status.get("stop_requested"):
            run.update_status(state="stopped", reason="stop requested", message="stopped through SLURM",
                              exit_code=code, ended=time.time())
            EventWriter(run.events).emit("run_stopped", 0, reason="stop requested", checkpoint=None)
        else:
            from runner import presets

            # the run's config sizes an out-of-memory suggestion (the estimator's remedies)
            diagnosis = diagnose_text(tail_text(run.log, 60), code, config=presets.load(run.config).config)
            run.update_status(state="failed", reason=diagnosis.reason, message=diagnosis.message,
                              suggestion=diagnosis.suggestion, exit_code=code, ended=time.time())
            EventWriter(run.events).emit("run_failed", 0, reason=diagnosis.reason, message=diagnosis.message,
                                         suggestion=diagnosis.suggestion, traceback_tail=tail_text(run.log, 12))
    else:
        run.update_status(exit_code=code, ended=status.get("ended") or time.time())
    # The job's own exit status: a run that finished or stopped gracefully is a success for SLURM
    # too (torchrun exits non-zero when its workers were signalled, even after a clean stop).
    return 0 if run.read_status().get("state") in ("finished", "stopped") else (code or 1)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 3 and args[0] == "settle":
        return settle(RunDir(Path(args[1]).resolve()), int(args[2]))
    print("usage: python -m runner.slurm settle RUN_DIR EXIT_CODE", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
