"""Stop a run: SIGTERM to its trainer processes (each checkpoints and exits "stopped"; the launcher
above them sees a clean exit), then SIGKILL to the whole group after a grace period, then confirm
nothing of the run is left.

Only the trainers are signalled at first because torch's elastic agent (the multi-process launcher
inside `accelerate launch`) turns a SIGTERM of its own into a traceback and exit code 1. While no
trainer is up yet (accelerate still starting), the whole group gets the SIGTERM.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from dataclasses import dataclass, field

from runner.liveness import holders
from runner.registry import run_pids, run_processes, run_state, verified_group
from runner.rundir import FINAL_STATES, RunDir

DEFAULT_GRACE_S = 60.0
KILL_WAIT_S = 10.0  # after SIGKILL: how long to wait for the kernel to reap the run's processes


@dataclass
class StopResult:
    state: str  # the run's state afterwards
    signalled: bool  # False when nothing was running
    escalated: bool = False  # SIGKILL was needed
    leftover_pids: list[int] = field(default_factory=list)  # should be empty
    gpu_memory_released: bool | None = None  # None: no GPU (or NVML) to ask
    message: str = ""
    elsewhere: bool = False  # not stopped: it runs on another host (status.json's), to be stopped there


def has_processes(run: RunDir) -> bool:
    """Whether `stop` would signal anything here (what the CLI checks before saying "stopping").
    No group is needed: a group `stop` may signal is one whose live leader is the run's supervisor,
    whose command line names the run."""
    return bool(run_processes(run.path))


def stop(run: RunDir, grace: float = DEFAULT_GRACE_S, poll: float = 0.2) -> StopResult:
    """Stop every process of the run. Only processes proven to be the run's are signalled: those
    whose command line names this run directory, and the process group status.json names only if
    its leader is the supervisor the launcher recorded (creation time and command line). A stale or
    foreign pid in status.json is reported, never signalled."""
    status = run.read_status()
    current = run_state(run, status)
    pgid, foreign = verified_group(run, status)
    processes = run_processes(run.path, pgid)
    notes = [foreign] if foreign else []
    if not processes:  # the first words say so: nothing is signalled
        host = status.get("host")
        elsewhere = current.active and current.state != "starting" and host not in (None, socket.gethostname())
        message = (f"{run.name} is not running on this machine: it runs on {host} (state: {current.state}); "
                   "stop it there" if elsewhere else f"{run.name} is not running (state: {current.state})")
        return StopResult(current.state, False, message="; ".join([message, *notes]), elsewhere=elsewhere)
    run.update_status(state="stopping", stop_requested=time.time())
    pids_before = list(processes)
    trainers = [pid for pid, trainer in processes.items() if trainer]
    if trainers:
        _signal_pids(trainers, signal.SIGTERM)
    elif pgid:
        _signal_group(pgid, signal.SIGTERM)
    else:
        _signal_pids(pids_before, signal.SIGTERM)
    escalated = not _wait_gone(run, pgid, grace, poll)
    if escalated:
        if pgid:
            _signal_group(pgid, signal.SIGKILL)
        _signal_pids(run_pids(run.path), signal.SIGKILL)  # trainers live outside the group
        # SIGKILL cannot be ignored, but a process in uninterruptible I/O dies only when that ends:
        # the group is still watched, and reported below if it outlives the wait.
        _wait_gone(run, pgid, KILL_WAIT_S, poll)
    leftovers = run_pids(run.path, pgid)
    status = run.read_status()
    final = status.get("state")
    if final not in FINAL_STATES:
        # Killed before the trainer (or its supervisor) could record the end.
        from runner.events import EventWriter, last_step

        reason = "killed after the grace period" if escalated else "stop requested"
        EventWriter(run.events).emit("run_stopped", last_step(run.events), reason=reason,
                                     checkpoint=_checkpoint(run))
        run.update_status(state="stopped", reason=reason, message=reason, ended=time.time())
        final = "stopped"
    elif not status.get("ended"):
        run.update_status(ended=time.time())  # the supervisor was gone: nobody else records the end
    message = f"{run.name}: {final}" + (f" (escalated to SIGKILL after {grace:g}s)" if escalated else "")
    if leftovers:
        message += f"; processes still alive: {leftovers}"
    message = "; ".join([message, *notes])
    return StopResult(final, True, escalated, leftovers, gpu_released(pids_before), message)


def _checkpoint(run: RunDir) -> str | None:
    latest = run.latest_checkpoint()
    return str(latest) if latest else None


def _signal_pids(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _wait_gone(run: RunDir, pgid: int | None, timeout: float, poll: float) -> bool:
    """Until no process of the run is left and no lock of it is held."""
    deadline = time.monotonic() + timeout
    while True:
        if not run_pids(run.path, pgid) and not holders(run).alive:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)


def gpu_released(pids: list[int]) -> bool | None:
    """Whether no GPU still lists one of these pids as a compute process (None without NVML/GPU)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver, no GPU: nothing to report
        return None
    try:
        wanted = set(pids)
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if proc.pid in wanted:
                    return False
        return True
    except Exception:  # noqa: BLE001
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass
