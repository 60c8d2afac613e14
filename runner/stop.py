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
import time
from dataclasses import dataclass, field

from runner.registry import effective_state, run_pids, run_processes
from runner.rundir import ACTIVE_STATES, FINAL_STATES, RunDir

DEFAULT_GRACE_S = 60.0


@dataclass
class StopResult:
    state: str  # the run's state afterwards
    signalled: bool  # False when nothing was running
    escalated: bool = False  # SIGKILL was needed
    leftover_pids: list[int] = field(default_factory=list)  # should be empty
    gpu_memory_released: bool | None = None  # None: no GPU (or NVML) to ask
    message: str = ""


def stop(run: RunDir, grace: float = DEFAULT_GRACE_S, poll: float = 0.2) -> StopResult:
    status = run.read_status()
    pgid = status.get("pgid")
    state = effective_state(status)
    if state not in ACTIVE_STATES or not pgid:
        return StopResult(state, False, message=f"{run.name} is not running (state: {state})")
    pgid = int(pgid)
    run.update_status(state="stopping", stop_requested=time.time())
    processes = run_processes(run.path, pgid)
    pids_before = list(processes)
    trainers = [pid for pid, trainer in processes.items() if trainer]
    if trainers:
        _signal_pids(trainers, signal.SIGTERM)
    else:
        _signal_group(pgid, signal.SIGTERM)
    escalated = not _wait_gone(run, pgid, grace, poll)
    if escalated:
        _signal_group(pgid, signal.SIGKILL)
        _signal_pids(run_pids(run.path, pgid), signal.SIGKILL)  # trainers live outside the group
        _wait_gone(run, pgid, 10.0, poll)
    leftovers = run_pids(run.path, pgid)
    status = run.read_status()
    if status.get("state") not in FINAL_STATES:
        # Killed before the trainer (or its supervisor) could record the end.
        from runner.events import EventWriter

        reason = "killed after the grace period" if escalated else "stop requested"
        EventWriter(run.events).emit("run_stopped", _last_step(run), reason=reason, checkpoint=None)
        run.update_status(state="stopped", reason=reason, message=reason, ended=time.time())
    final = run.read_status().get("state", "stopped")
    message = f"{run.name}: {final}" + (" (escalated to SIGKILL)" if escalated else "")
    if leftovers:
        message += f"; processes still alive: {leftovers}"
    return StopResult(final, True, escalated, leftovers, gpu_released(pids_before), message)


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


def _wait_gone(run: RunDir, pgid: int, timeout: float, poll: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not run_pids(run.path, pgid):
            return True
        time.sleep(poll)
    return not run_pids(run.path, pgid)


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


def _last_step(run: RunDir) -> int:
    from runner.events import read_events

    events = read_events(run.events)
    return int(events[-1].get("step", 0)) if events else 0
