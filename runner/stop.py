"""Stop a run: SIGTERM to its process group (the trainer checkpoints and exits "stopped"), then
SIGKILL to the whole group after a grace period, then confirm nothing of the run is left."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field

from runner.registry import effective_state, group_pids
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
    pids_before = group_pids(pgid)
    _signal_group(pgid, signal.SIGTERM)
    escalated = not _wait_gone(pgid, grace, poll)
    if escalated:
        _signal_group(pgid, signal.SIGKILL)
        _wait_gone(pgid, 10.0, poll)
    leftovers = group_pids(pgid)
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


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _wait_gone(pgid: int, timeout: float, poll: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not group_pids(pgid):
            return True
        time.sleep(poll)
    return not group_pids(pgid)


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
