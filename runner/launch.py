"""Start a run: build the `accelerate launch` argv, write the run directory, start it detached.

The process tree of a run, all in one new session (so its own process group, no controlling
terminal: closing the terminal, the TUI or the SSH connection sends it nothing):

    python -m runner.launch RUN_DIR          supervisor: waits, records the exit code
      └─ python -m accelerate.commands.launch [flags] -m runner.train RUN_DIR
           └─ python -m runner.train RUN_DIR   (one per process; rank 0 writes events)

Every process writes straight into RUN_DIR/output.log (no pipe back to whoever launched it).
The supervisor records the final state if the trainer could not (killed, crashed at import).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from runner.rundir import (FINAL_STATES, SUPERVISOR_MODULE, TRAIN_MODULE, RunDir, create_exact_run_dir, new_run_dir,
                           removed_on_failure, tail_text)
from runner.schema import Config

SECRET_MARKERS = ("TOKEN", "KEY", "SECRET", "PASSWORD")
# Environment every run gets; values are fixed strings, safe to record in command.json.
RUN_ENV = {
    "TOKENIZERS_PARALLELISM": "false",  # the tokenizer's threads would fight the dataloader's
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "PYTHONUNBUFFERED": "1",  # output.log follows progress live
    "ACCELERATE_DISABLE_RICH": "1",
    # `python -m` would put the working directory first on sys.path: a `runner/` folder there (or in a
    # tampered command.json's cwd) must never be imported in place of tunedeck's own.
    "PYTHONSAFEPATH": "1",
}


def is_secret(name: str) -> bool:
    upper = name.upper()
    return any(marker in upper for marker in SECRET_MARKERS)


# --- hardware -----------------------------------------------------------------------------
def detect_cuda() -> tuple[bool, int]:
    """(CUDA usable, GPU count) without importing torch: NVML through runner.validate, else the driver."""
    from runner.validate import machine_context

    try:
        context = machine_context()
    except Exception:  # noqa: BLE001 - a broken probe means "ask the driver directly"
        context = None
    if context is not None and context.cuda_available is not None:
        return bool(context.cuda_available), int(context.gpu_count or 0)
    gpus_dir = Path("/proc/driver/nvidia/gpus")
    if gpus_dir.is_dir():
        count = sum(1 for _ in gpus_dir.iterdir())
        return count > 0, count
    return False, 0


# --- argv -----------------------------------------------------------------------------------
def mixed_precision(config: Config) -> str:
    """accelerate's --mixed_precision, consistent with training.bf16 / training.fp16 when 'auto'."""
    from runner.schema.launch import resolve_mixed_precision

    return resolve_mixed_precision(config.launch.mixed_precision, config.training.bf16, config.training.fp16)


def launch_precision(config: Config, *, cuda: bool) -> str:
    """--mixed_precision for the target: CPUs have no fp16 autocast worth using; bf16 works on recent ones."""
    chosen = mixed_precision(config)
    return chosen if cuda or chosen == "bf16" else "no"


def require_address(config: Config, what: str) -> None:
    """Multi-node without SLURM needs the main node's address in the preset (SLURM computes it)."""
    launch = config.launch
    if launch.num_machines > 1 and not launch.main_process_ip:
        from runner.problems import ConfigError, Problem

        raise ConfigError([Problem(
            "error", f"{launch.num_machines} machines need the main node's address for {what}",
            key="launch.main_process_ip",
            hint="set launch.main_process_ip, or use the sbatch export / `tunedeck run --slurm`, which take it "
                 "from the allocation")])


def build_argv(config: Config, run_dir: str | os.PathLike[str], *, cuda: bool, resume: bool = False,
               python: str | None = None) -> list[str]:
    """The exact `accelerate launch` command: every accelerate flag, then `-m runner.train RUN_DIR`."""
    launch = config.launch
    run_path = Path(run_dir)
    total_processes = launch.num_processes * launch.num_machines
    argv = [python or sys.executable, "-m", "accelerate.commands.launch"]
    if launch.strategy in ("fsdp", "deepspeed"):
        argv += ["--config_file", str(RunDir(run_path).accelerate_config)]
    elif total_processes > 1:
        # DDP. On CPU too: accelerate's --cpu starts a single process, so several CPU processes go
        # through torchrun (--multi_gpu) and the trainer selects the CPU/gloo backend itself.
        argv.append("--multi_gpu")
    elif not cuda:
        argv.append("--cpu")
    argv += [
        # accelerate's --num_processes is the total over all machines; it divides by --num_machines.
        "--num_processes", str(total_processes),
        "--num_machines", str(launch.num_machines),
        "--machine_rank", str(launch.machine_rank),
        "--main_process_port", str(launch.main_process_port),
        "--mixed_precision", launch_precision(config, cuda=cuda),
        "--dynamo_backend", "no",
    ]
    if launch.main_process_ip:
        argv += ["--main_process_ip", launch.main_process_ip]
    if cuda and launch.gpu_ids.strip() and launch.gpu_ids.strip() != "all":
        argv += ["--gpu_ids", launch.gpu_ids.strip()]
    argv += ["-m", TRAIN_MODULE, str(run_path)]
    if resume:
        argv.append("--resume")
    return argv


def accelerate_config(config: Config, *, cuda: bool) -> dict[str, Any] | None:
    """accelerate's config file for FSDP / DeepSpeed (None otherwise). JSON, which accelerate reads."""
    launch = config.launch
    base: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "debug": False,
        "mixed_precision": launch_precision(config, cuda=cuda),
        "num_machines": launch.num_machines,
        "num_processes": launch.num_processes * launch.num_machines,
        "machine_rank": launch.machine_rank,
        "main_process_port": launch.main_process_port,
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": not cuda,
        "downcast_bf16": "no",
    }
    if launch.main_process_ip:
        base["main_process_ip"] = launch.main_process_ip
    if cuda and launch.gpu_ids.strip():
        base["gpu_ids"] = launch.gpu_ids.strip()
    if launch.strategy == "fsdp":
        base["distributed_type"] = "FSDP"
        base["fsdp_config"] = {
            "fsdp_version": 2,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",  # one shard unit per decoder block
            "fsdp_reshard_after_forward": True,  # FULL_SHARD: free gathered weights after use
            "fsdp_offload_params": False,
            "fsdp_state_dict_type": "SHARDED_STATE_DICT",  # fast checkpoints; final save gathers
            "fsdp_cpu_ram_efficient_loading": True,  # only rank 0 reads the weights from disk
            "fsdp_activation_checkpointing": config.training.gradient_checkpointing,
        }
        return base
    if launch.strategy == "deepspeed" and launch.deepspeed_config.strip():
        # The user's own DeepSpeed file: accelerate refuses zero_stage, clipping and the like beside it.
        base["distributed_type"] = "DEEPSPEED"
        base["deepspeed_config"] = {
            "deepspeed_config_file": str(Path(launch.deepspeed_config.strip()).expanduser().resolve()),
            "zero3_init_flag": int(launch.zero_stage) == 3,
        }
        return base
    if launch.strategy == "deepspeed":
        stage = int(launch.zero_stage)
        base["distributed_type"] = "DEEPSPEED"
        base["deepspeed_config"] = {
            "zero_stage": stage,
            "gradient_accumulation_steps": config.training.gradient_accumulation_steps,
            "gradient_clipping": config.training.max_grad_norm,
            "offload_optimizer_device": "none",
            "offload_param_device": "none",
            "zero3_init_flag": stage == 3,  # build the model already sharded
            "zero3_save_16bit_model": stage == 3,  # final/ gets a consolidated 16-bit model
        }
        return base
    return None


# --- preparing and starting -----------------------------------------------------------------
def run_env(base: dict[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    """The child environment and the names tunedeck set (recorded in command.json, never values)."""
    env = dict(os.environ if base is None else base)
    env.update(RUN_ENV)
    project_root = str(Path(__file__).resolve().parent.parent)  # so `-m runner.train` imports this copy
    env["PYTHONPATH"] = os.pathsep.join(p for p in (project_root, env.get("PYTHONPATH", "")) if p)
    return env, sorted([*RUN_ENV, "PYTHONPATH"])


def write_command(run: RunDir, argv: Sequence[str], env_set: Sequence[str], cwd: str, **extra: Any) -> None:
    """command.json: what was started, for people and `export`. A record only: nothing executes it."""
    inherited = sorted(k for k in os.environ if is_secret(k))  # names only: values stay in the env
    record = {
        "argv": list(argv),
        "cwd": cwd,
        "env_set": list(env_set),
        "secret_env_inherited": inherited,
        "python": sys.executable,
        "host": socket.gethostname(),
        "created": time.time(),
        **extra,
    }
    from runner.atomic import atomic_write_text

    atomic_write_text(run.command, json.dumps(record, indent=2) + "\n")


class RunBusy(Exception):
    """A process of the run still holds its lock: it must not be started a second time."""


def prepare(config: Config, *, preset_name: str, runs_dir: str | os.PathLike[str] | None = None,
            run_dir: str | os.PathLike[str] | None = None, cuda: bool | None = None) -> RunDir:
    """Create the run directory with the config snapshot, accelerate config and command.json, and
    record it in the runs index. `runs_dir` None: runner.runs_home.runs_dir() decides. On any
    failure nothing is left behind (raises runner.rundir.RunDirError for an unusable or full disk)."""
    from runner import presets  # the TOML writer; light
    from runner.trackers import tracker_problem

    missing = tracker_problem(config.training.report_to)
    if missing is not None:  # fail before creating anything, not minutes into the run
        from runner.problems import ConfigError

        raise ConfigError([missing])
    if cuda is None:
        from runner.target import target_cuda

        cuda = target_cuda(config, detect_cuda()[0])
    if run_dir is not None:
        run = create_exact_run_dir(run_dir)
    else:
        from runner.runs_home import runs_dir as where

        run = new_run_dir(where(runs_dir, config), preset_name)
    with removed_on_failure(run):
        # Self-contained snapshot: `extends` resolved, so later edits to a parent preset change nothing.
        presets.save(config.model_copy(update={"extends": ""}), run.config)
        _write_accelerate_config(run, config, cuda)
        argv = build_argv(config, run.path, cuda=cuda)
        _, env_set = run_env()
        write_command(run, argv, env_set, os.getcwd())
        run.update_status(state="starting", preset=preset_name, created=time.time(), cuda=cuda,
                          host=socket.gethostname())
        from runner.runs_home import record

        record(run.path)
    return run


def _write_accelerate_config(run: RunDir, config: Config, cuda: bool) -> None:
    accel = accelerate_config(config, cuda=cuda)
    if accel is not None:
        from runner.atomic import atomic_write_text

        atomic_write_text(run.accelerate_config, json.dumps(accel, indent=2) + "\n")


def run_argv(run: RunDir, *, resume: bool = False) -> tuple[Config, list[str]]:
    """The run's config and its `accelerate launch` argv, rebuilt from config.toml through the same
    build_argv as at launch. command.json is never executed: a copied or tampered run directory
    can change what is trained (config.toml is validated data), never what runs."""
    from runner import presets

    config = presets.require(run.config).config  # ConfigError: not a valid config
    return config, build_argv(config, run.path, cuda=run_cuda(run), resume=resume)


def run_cuda(run: RunDir) -> bool:
    """Whether the run trains on CUDA: as prepared (status.json), or this machine's answer when
    status.json is damaged."""
    cuda = run.read_status().get("cuda")
    return cuda if isinstance(cuda, bool) else detect_cuda()[0]


def start(run: RunDir, *, resume: bool = False) -> subprocess.Popen:
    """Start the run's supervisor detached (own session, output to output.log) and return at once.
    Raises RunBusy while a process of the run holds its lock."""
    from runner.liveness import holders
    from runner.registry import run_duration

    if holders(run).alive:
        raise RunBusy(f"{run.name} is still running (a process of it holds its lock); stop it first")
    config, argv = run_argv(run, resume=resume)
    _write_accelerate_config(run, config, run_cuda(run))
    try:
        recorded = json.loads(run.command.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = {}
    cwd = recorded.get("cwd") if isinstance(recorded, dict) else None
    if not isinstance(cwd, str) or not os.path.isdir(cwd):
        cwd = os.getcwd()  # data paths in the config are relative to where the run was launched
    env, env_set = run_env()
    status = run.read_status()
    now = time.time()
    timing: dict[str, Any] = {"started": now, "segment_started": now, "elapsed_before": 0.0, "segments": 1}
    if resume:
        # One run, several launches: keep the first start, add up the time of each launch.
        earlier_end = status.get("ended") or status.get("updated")
        before = run_duration(status, earlier_end if isinstance(earlier_end, (int, float)) else None)
        first = status.get("started")
        timing = {"started": first if isinstance(first, (int, float)) else now, "segment_started": now,
                  "elapsed_before": before or 0.0, "segments": int(status.get("segments") or 1) + 1}
    write_command(run, argv, env_set, cwd, **({"resumed": now} if resume else {}))
    run.update_status(state="starting", exit_code=None, reason=None, message=None, suggestion=None, ended=None,
                      stop_requested=None, pid=None, pgid=None, pid_create_time=None, trainer_pid=None, **timing)
    with open(run.log, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", SUPERVISOR_MODULE, str(run.path), *(["--resume"] if resume else [])],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # new session + process group: immune to the terminal's SIGHUP/^C
            close_fds=True,
        )
    run.update_status(pid=proc.pid, pgid=proc.pid, pid_create_time=_create_time(proc.pid))
    return proc


def _create_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


# --- the supervisor (runs detached) ---------------------------------------------------------
def supervise(run: RunDir, resume: bool = False) -> int:
    """Run the argv rebuilt from config.toml, wait for it and every process of the run, then settle
    status.json. Holds the supervisor lock throughout; a second supervisor of the same directory, or
    one started while a trainer of it still lives, exits at once without touching anything."""
    from runner.diagnose import diagnose_text
    from runner.liveness import RunLocked, hold, is_held

    try:
        hold(run, "supervisor")  # kept until this process exits
    except RunLocked as exc:
        print(f"[tunedeck] not starting: {exc}", flush=True)
        return 3
    if is_held(run, "trainer"):
        print(f"[tunedeck] not starting: a trainer of {run.path} is still running (stop it first)", flush=True)
        return 3

    stop_signal: list[int] = []

    def remember(signum: int, _frame: Any) -> None:
        # `tunedeck stop` signals the trainers (or the group): they save and exit; we just wait.
        stop_signal.append(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, remember)  # handlers (unlike SIG_IGN) are reset in the exec'd child

    from runner.problems import ConfigError

    try:
        config, argv = run_argv(run, resume=resume)
    except ConfigError as exc:
        return _settle(run, 2, diagnose_text(f"ConfigError: {exc}", 2), stop_signal)
    print(f"[tunedeck] {time.strftime('%Y-%m-%d %H:%M:%S')} launching: {' '.join(argv)}", flush=True)
    try:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    except OSError as exc:
        return _settle(run, 127, diagnose_text(str(exc), 127), stop_signal)
    while True:
        try:
            code = child.wait()
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            continue
    _wait_for_group(run)
    tail = tail_text(run.log, 60)
    return _settle(run, code, diagnose_text(tail, code, str(run.path), config), stop_signal)


def _wait_for_group(run: RunDir, timeout: float = 120.0) -> None:
    """accelerate can exit before its workers (e.g. on SIGTERM); wait until no other process of the
    run is left: none in our group, and no trainer (those may live in sessions of their own)."""
    from runner.registry import run_pids

    me = os.getpid()
    pgid = os.getpgid(0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [pid for pid in run_pids(run.path, pgid) if pid != me]:
            return
        time.sleep(0.3)


def _settle(run: RunDir, code: int, diagnosis: Any, stop_signal: list[int]) -> int:
    try:
        return _record_end(run, code, diagnosis, stop_signal)
    except OSError as exc:  # e.g. the disk is full: say so in the log; `runs` shows the run as lost
        print(f"[tunedeck] could not record the end of the run: {exc}", flush=True)
        return 1


def _record_end(run: RunDir, code: int, diagnosis: Any, stop_signal: list[int]) -> int:
    status = run.read_status()
    final: dict[str, Any] = {"exit_code": code, "ended": time.time()}
    if status.get("state") not in FINAL_STATES:
        # The trainer never reported an end: it was killed or died before it could.
        from runner.events import EventWriter, last_step

        if stop_signal and code in (0, -signal.SIGTERM, -signal.SIGINT, 128 + signal.SIGTERM):
            final.update(state="stopped", reason="stop requested", message="stopped before the trainer started")
            EventWriter(run.events).emit("run_stopped", last_step(run.events), reason="stop requested", checkpoint=None)
        else:
            final.update(state="failed", reason=diagnosis.reason, message=diagnosis.message,
                         suggestion=diagnosis.suggestion)
            EventWriter(run.events).emit("run_failed", last_step(run.events), reason=diagnosis.reason,
                                         message=diagnosis.message, suggestion=diagnosis.suggestion,
                                         traceback_tail=tail_text(run.log, 12))
    run.update_status(**final)
    print(f"[tunedeck] {time.strftime('%Y-%m-%d %H:%M:%S')} exited with code {code}; "
          f"state {run.read_status().get('state')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(supervise(RunDir(Path(sys.argv[1]).resolve()), resume="--resume" in sys.argv[2:]))
