"""`stop` against real stand-in processes, in this process (fast; no training): which processes get
SIGTERM (trainers, else the verified group, else the run's named processes), escalation to SIGKILL,
what status.json and events.jsonl say afterwards, the "not running" answers and the remote-host note,
and the GPU check. The stand-ins have the command lines of a run's processes (`-m runner.train RUN`,
`-m runner.launch RUN`) and hold its locks, so runner.registry and runner.liveness see a real run."""

from __future__ import annotations

import functools

import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import psutil
import pytest

from runner import presets
from runner.events import EventWriter, read_events
from runner.rundir import RunDir
from fixtures.processes import reap, wait_until
from runner.stop import _signal_group, _signal_pids, _wait_gone, gpu_released, has_processes, stop

# One script for both roles (`python -m runner.train RUN` and `python -m runner.launch RUN` from a
# shadow package). STANDIN_<ROLE> says what it does on SIGTERM:
#   obey    exit 0                     ignore  note it, carry on (only SIGKILL ends it)
#   settle  record "stopped" (or STANDIN_STATE) in status.json first, like runner.train after its checkpoint
# Every SIGTERM it gets is noted in RUN/<role>.term (with the state status.json had at that moment).
# The launch stand-in may start a child in its process group that names no run (GROUP_CHILD=obey or
# ignore; its pid goes to RUN/group-child.pid), and with FOLLOW_TRAINER=1 exits once no trainer
# lock is held, as the real supervisor does when its child ends.
STANDIN = r'''
import fcntl, json, os, signal, subprocess, sys, time
role = __spec__.name.rsplit(".", 1)[1]
run = sys.argv[1]
mode = os.environ.get("STANDIN_" + role.upper(), "obey")

def write(name, text):
    tmp = os.path.join(run, "." + name + ".tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
    os.replace(tmp, os.path.join(run, name))

def status():
    try:
        with open(os.path.join(run, "status.json")) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}

def on_term(signum, frame):
    with open(os.path.join(run, role + ".term"), "a") as handle:
        handle.write(str(status().get("state")) + "\n")
    if mode == "ignore":
        return
    if mode == "settle":
        with open(os.path.join(run, ".status.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            now = status()
            now.update(state=os.environ.get("STANDIN_STATE", "stopped"), reason="stop requested (SIGTERM)",
                       message="stopped at step 7")
            if os.environ.get("STANDIN_ENDED"):
                now["ended"] = float(os.environ["STANDIN_ENDED"])
            write("status.json", json.dumps(now))
    os._exit(0)

signal.signal(signal.SIGTERM, on_term)
lock = os.open(os.path.join(run, "." + ("trainer" if role == "train" else "supervisor") + ".lock"),
               os.O_RDWR | os.O_CREAT)
fcntl.flock(lock, fcntl.LOCK_EX)
child = os.environ.get("GROUP_CHILD")
if role == "launch" and child:
    code = "import signal, time\n"
    if child == "ignore":
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    proc = subprocess.Popen([sys.executable, "-c", code + "print(flush=True)\ntime.sleep(300)"],
                            stdout=subprocess.PIPE)
    proc.stdout.readline()  # its SIGTERM disposition is in place
    write("group-child.pid", str(proc.pid))
write(role + ".ready", "")
follow = os.environ.get("FOLLOW_TRAINER")
while True:
    time.sleep(0.05)
    if follow:
        probe = os.open(os.path.join(run, ".trainer.lock"), os.O_RDONLY)
        try:
            fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
            os._exit(0)
        except OSError:
            pass
        finally:
            os.close(probe)
'''


# polled often: some tests catch a state that lasts only a moment
wait_for = functools.partial(wait_until, every=0.02)


def make_run(root: Path, name: str = "demo-1", **status) -> RunDir:
    run = RunDir((root / name).resolve())
    run.checkpoints.mkdir(parents=True)
    presets.save(presets.require("demo").config, run.config)
    for role in ("supervisor", "trainer"):  # a run of this tunedeck: liveness comes from its locks
        (run.path / f".{role}.lock").touch()
    run.update_status(**status)
    return run


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def standin(tmp_path: Path):
    """start(run, role, **env) starts a stand-in ("train" or "launch") in a session of its own and
    waits until it holds its lock. Everything started is killed by pid at the end."""
    package = tmp_path / "shadow" / "runner"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for role in ("train", "launch"):
        (package / f"{role}.py").write_text(STANDIN)
    started: list[subprocess.Popen] = []
    children: list[tuple[int, float]] = []

    def start(run: RunDir, role: str, **env: str) -> subprocess.Popen:
        full = dict(os.environ, PYTHONPATH=str(tmp_path / "shadow"), **env)
        proc = subprocess.Popen([sys.executable, "-m", f"runner.{role}", str(run.path)], env=full,
                                cwd=tmp_path / "shadow", start_new_session=True)
        started.append(proc)
        wait_for(lambda: (run.path / f"{role}.ready").exists(), what=f"the {role} stand-in")
        child = run.path / "group-child.pid"
        if role == "launch" and child.exists():
            pid = int(child.read_text())
            children.append((pid, psutil.Process(pid).create_time()))
        return proc

    yield start
    reap(started)
    for pid, created in children:  # by pid, and only if it is still the child we started
        try:
            child = psutil.Process(pid)
            if child.create_time() == created:
                child.kill()
        except psutil.Error:
            pass


def supervised(run: RunDir, proc: subprocess.Popen) -> None:
    """status.json as runner.launch.start records its supervisor: pid, group, creation time."""
    run.update_status(pid=proc.pid, pgid=proc.pid, pid_create_time=psutil.Process(proc.pid).create_time())


def term_states(run: RunDir, role: str) -> list[str]:
    path = run.path / f"{role}.term"
    return path.read_text().split() if path.exists() else []


def with_progress(run: RunDir, step: int) -> Path:
    """Events up to `step` and a checkpoint at `step`, as a trainer leaves them."""
    writer = EventWriter(run.events)
    for s in range(1, step + 1):
        writer.emit("log", s, loss=2.0 / s)
    checkpoint = run.checkpoints / f"checkpoint-{step}"
    checkpoint.mkdir()
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return checkpoint


# --- nothing to stop ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("recorded", "host", "state", "note"), [
    ("running", "gpu-node-7", "running", True),  # its locks are on that machine: say where to stop it
    ("stopping", "gpu-node-7", "stopping", True),
    ("starting", "gpu-node-7", "starting", False),  # may still be starting here: no "runs there" claim
    ("finished", "gpu-node-7", "finished", False),  # over: nothing to stop anywhere
    ("running", None, "lost", False),  # here, no process and no lock: lost, nothing to say about hosts
    ("failed", None, "failed", False),
])
def test_a_run_with_no_process_here_is_not_running_and_nothing_is_written(tmp_path, recorded, host, state, note) -> None:
    run = make_run(tmp_path, state=recorded, **({"host": host} if host else {}))
    before = run.status_file.read_bytes()
    result = stop(run, grace=0.5, poll=0.05)
    expected = (f"demo-1 is not running on this machine: it runs on gpu-node-7 (state: {state}); stop it there"
                if note else f"demo-1 is not running (state: {state})")
    assert (result.state, result.signalled, result.escalated, result.message) == (state, False, False, expected)
    assert result.elsewhere is note
    assert result.leftover_pids == [] and result.gpu_memory_released is None
    assert run.status_file.read_bytes() == before and not run.events.exists()


def test_the_local_host_gets_no_remote_note(tmp_path) -> None:
    run = make_run(tmp_path, state="running", host=os.uname().nodename)
    assert stop(run, grace=0.5).message == "demo-1 is not running (state: lost)"


# --- whom SIGTERM reaches ---------------------------------------------------------------------------
def test_trainers_get_sigterm_and_the_supervisor_none(tmp_path, standin) -> None:
    """torch's launcher turns a SIGTERM of its own into a traceback: only the trainers are signalled,
    and the supervisor ends when they do."""
    run = make_run(tmp_path, state="running")
    trainer = standin(run, "train", STANDIN_TRAIN="settle")
    supervisor = standin(run, "launch", FOLLOW_TRAINER="1")
    supervised(run, supervisor)
    result = stop(run, grace=20.0, poll=0.05)
    assert trainer.wait(timeout=10) == 0 and supervisor.wait(timeout=10) == 0
    assert term_states(run, "train") == ["stopping"]  # "stopping" was recorded before the signal
    assert term_states(run, "launch") == []
    assert (result.state, result.signalled, result.escalated, result.leftover_pids) == ("stopped", True, False, [])
    assert result.message == "demo-1: stopped"


def test_without_a_trainer_the_verified_group_gets_sigterm(tmp_path, standin) -> None:
    """accelerate still starting: its processes name no run, only the group reaches them."""
    run = make_run(tmp_path, state="starting")
    supervisor = standin(run, "launch", GROUP_CHILD="obey")
    supervised(run, supervisor)
    child = int((run.path / "group-child.pid").read_text())
    result = stop(run, grace=20.0, poll=0.05)
    assert supervisor.wait(timeout=10) == 0 and term_states(run, "launch") == ["stopping"]
    wait_for(lambda: gone(child), 10, "the group's other process to end")
    assert not result.escalated and result.message == "demo-1: stopped"
    status = run.read_status()
    # nobody else recorded the end: stop does, as a stop (not a failure)
    assert status["state"] == "stopped" and status["reason"] == status["message"] == "stop requested"
    [event] = read_events(run.events)
    assert event["type"] == "run_stopped" and event["reason"] == "stop requested" and event["checkpoint"] is None


def test_without_a_group_the_run_s_named_processes_get_sigterm(tmp_path, standin) -> None:
    run = make_run(tmp_path, state="running")  # no pid/pgid recorded (e.g. status.json rewritten)
    supervisor = standin(run, "launch")
    result = stop(run, grace=20.0, poll=0.05)
    assert supervisor.wait(timeout=10) == 0 and term_states(run, "launch") == ["stopping"]
    assert result.signalled and not result.escalated and result.state == "stopped"


def test_a_forged_group_leader_is_reported_and_only_the_run_s_own_processes_are_signalled(tmp_path, standin) -> None:
    run = make_run(tmp_path, state="running")
    supervisor = standin(run, "launch", GROUP_CHILD="obey")
    child = int((run.path / "group-child.pid").read_text())
    # the right pid, but a creation time that is not its own: a stale record of a reused pid
    run.update_status(pid=supervisor.pid, pgid=supervisor.pid,
                      pid_create_time=psutil.Process(supervisor.pid).create_time() - 50.0)
    result = stop(run, grace=20.0, poll=0.05)
    assert supervisor.wait(timeout=10) == 0
    assert result.message == (f"demo-1: stopped; status.json names process group {supervisor.pid}, "
                              "which is not this run's (not signalled)")
    assert not gone(child)  # only reachable through the group, which was not proven the run's


# --- escalation ------------------------------------------------------------------------------------------
def test_a_trainer_ignoring_sigterm_is_killed_after_the_grace_period_and_the_stop_recorded(tmp_path, standin) -> None:
    run = make_run(tmp_path, state="running")
    checkpoint = with_progress(run, 7)
    trainer = standin(run, "train", STANDIN_TRAIN="ignore")
    asked = time.time()
    result = stop(run, grace=0.5, poll=0.05)
    assert trainer.wait(timeout=10) == -signal.SIGKILL and term_states(run, "train") == ["stopping"]
    assert (result.state, result.signalled, result.escalated, result.leftover_pids) == ("stopped", True, True, [])
    assert result.message == "demo-1: stopped (escalated to SIGKILL after 0.5s)"
    status = run.read_status()
    assert status["state"] == "stopped"
    assert status["reason"] == status["message"] == "killed after the grace period"
    assert asked <= status["stop_requested"] <= status["ended"] <= time.time()
    last = read_events(run.events)[-1]
    assert last["type"] == "run_stopped" and last["step"] == 7 and last["reason"] == "killed after the grace period"
    assert last["checkpoint"] == str(checkpoint)  # where `resume` continues from


def test_a_group_member_ignoring_sigterm_is_waited_for_then_killed(tmp_path, standin) -> None:
    """The supervisor obeys, but a process of its group (e.g. accelerate's) does not: the run is not
    over while that process lives, so the grace period runs out and the group is killed."""
    run = make_run(tmp_path, state="starting")
    supervisor = standin(run, "launch", GROUP_CHILD="ignore")
    supervised(run, supervisor)
    child = int((run.path / "group-child.pid").read_text())
    result = stop(run, grace=0.5, poll=0.05)
    assert supervisor.wait(timeout=10) == 0
    wait_for(lambda: gone(child), 10, "the group's other process to be killed")
    assert result.escalated and result.message == "demo-1: stopped (escalated to SIGKILL after 0.5s)"


def test_escalation_kills_the_whole_verified_group(tmp_path, standin) -> None:
    run = make_run(tmp_path, state="starting")
    supervisor = standin(run, "launch", STANDIN_LAUNCH="ignore", GROUP_CHILD="ignore")
    supervised(run, supervisor)
    child = int((run.path / "group-child.pid").read_text())
    result = stop(run, grace=0.5, poll=0.05)
    assert supervisor.wait(timeout=10) == -signal.SIGKILL
    wait_for(lambda: gone(child), 10, "the group's other process to be killed")
    assert result.escalated and result.leftover_pids == [] and result.state == "stopped"
    assert run.read_status()["reason"] == "killed after the grace period"


# --- who records the end ------------------------------------------------------------------------------
def test_a_trainer_that_recorded_its_stop_keeps_its_reason_and_stop_adds_the_end_time(tmp_path, standin) -> None:
    run = make_run(tmp_path, state="running")
    standin(run, "train", STANDIN_TRAIN="settle")
    before = time.time()
    result = stop(run, grace=20.0, poll=0.05)
    status = run.read_status()
    assert result.message == "demo-1: stopped" and not result.escalated
    assert status["reason"] == "stop requested (SIGTERM)" and status["message"] == "stopped at step 7"
    assert before <= status["ended"] <= time.time()  # the supervisor was gone: nobody else would
    assert not run.events.exists()  # the trainer's own run_stopped stands; no second one


def test_a_trainer_that_failed_while_stopping_is_reported_failed(tmp_path, standin) -> None:
    """e.g. its last checkpoint hit a full disk: the user must not be told it stopped cleanly."""
    run = make_run(tmp_path, state="running")
    standin(run, "train", STANDIN_TRAIN="settle", STANDIN_STATE="failed")
    result = stop(run, grace=20.0, poll=0.05)
    assert (result.state, result.message) == ("failed", "demo-1: failed")
    assert run.read_status()["state"] == "failed"


def test_an_end_time_the_run_recorded_is_kept(tmp_path, standin) -> None:
    run = make_run(tmp_path, state="running")
    standin(run, "train", STANDIN_TRAIN="settle", STANDIN_ENDED="1234.5")
    stop(run, grace=20.0, poll=0.05)
    assert run.read_status()["ended"] == 1234.5


# --- the pieces ------------------------------------------------------------------------------------------
def test_signalling_a_process_that_already_ended_is_not_an_error(tmp_path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    proc.wait()
    _signal_pids([proc.pid], signal.SIGTERM)
    _signal_group(proc.pid, signal.SIGKILL)


def test_a_run_is_gone_only_when_no_process_names_it_and_no_lock_is_held(tmp_path, standin) -> None:
    run = make_run(tmp_path, state="running")
    assert _wait_gone(run, None, 0.2, 0.05)
    # A lock held by a process whose command line names no run (a dataloader worker that inherited it)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time\n"
                               "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
                               "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(300)",
                               str(run.path / ".trainer.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not _wait_gone(run, None, 0.3, 0.05)
    finally:
        holder.kill()
        holder.wait()
    assert _wait_gone(run, None, 5.0, 0.05)
    (run.path / ".trainer.lock").unlink()
    supervisor = standin(run, "launch")  # named, and holding the supervisor lock
    assert not _wait_gone(run, None, 0.3, 0.05)
    supervisor.kill()
    supervisor.wait()
    assert _wait_gone(run, None, 5.0, 0.05)


def fake_nvml(listed: list[int], fail: str = "") -> types.ModuleType:
    """pynvml as a machine with one GPU answers (the only stand-in here: CI has no GPU)."""
    module = types.ModuleType("pynvml")
    module.shut = []

    def init() -> None:
        if fail == "init":
            raise RuntimeError("NVML Shared Library Not Found")

    def processes(handle):
        if fail == "query":
            raise RuntimeError("GPU is lost")
        on = {"gpu0": [], "gpu1": listed}[handle]  # the run's processes are on the second GPU
        return [types.SimpleNamespace(pid=pid, usedGpuMemory=1 << 30) for pid in on]

    module.nvmlInit = init
    module.nvmlDeviceGetCount = lambda: 2
    module.nvmlDeviceGetHandleByIndex = lambda index: f"gpu{index}"
    module.nvmlDeviceGetComputeRunningProcesses = processes
    module.nvmlShutdown = lambda: module.shut.append(True)
    return module


def test_gpu_release_is_judged_by_the_gpu_s_own_process_list(monkeypatch) -> None:
    nvml = fake_nvml([4242, 77])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    assert gpu_released([77]) is False and gpu_released([1, 2]) is True and gpu_released([]) is True
    assert nvml.shut == [True, True, True]  # every init is paired with a shutdown
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([77], fail="init"))
    assert gpu_released([77]) is None  # no driver: nothing to claim either way
    failing = fake_nvml([77], fail="query")
    monkeypatch.setitem(sys.modules, "pynvml", failing)
    assert gpu_released([77]) is None and failing.shut == [True]


def test_stop_reports_whether_the_gpu_still_lists_the_run_s_processes(tmp_path, standin, monkeypatch) -> None:
    run = make_run(tmp_path, state="running")
    trainer = standin(run, "train", STANDIN_TRAIN="settle")
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([trainer.pid]))  # the driver has not caught up
    assert stop(run, grace=20.0, poll=0.05).gpu_memory_released is False
    other = make_run(tmp_path, "demo-2", state="running")
    standin(other, "train", STANDIN_TRAIN="settle")
    assert stop(other, grace=20.0, poll=0.05).gpu_memory_released is True


def test_the_gpu_check_covers_processes_only_the_group_names(tmp_path, standin, monkeypatch) -> None:
    """accelerate's own process holds GPU memory too and names no run: it is the run's by its group."""
    run = make_run(tmp_path, state="starting")
    supervisor = standin(run, "launch", GROUP_CHILD="obey")
    supervised(run, supervisor)
    child = int((run.path / "group-child.pid").read_text())
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([child]))
    assert stop(run, grace=20.0, poll=0.05).gpu_memory_released is False


RESPAWNER = r"""
import fcntl, os, subprocess, sys, time
run, shadow = sys.argv[1], sys.argv[2]
lock = os.open(os.path.join(run, ".trainer.lock"), os.O_RDWR | os.O_CREAT)
fcntl.flock(lock, fcntl.LOCK_EX)  # as a worker that inherited the trainer's lock holds it
env = dict(os.environ, PYTHONPATH=shadow, STANDIN_TRAIN="ignore")
while not os.path.exists(os.path.join(run, "stop-respawning")):
    child = subprocess.Popen([sys.executable, "-m", "runner.train", run], env=env, cwd=shadow)
    with open(os.path.join(run, "respawned.pids"), "a") as out:
        out.write(f"{child.pid}\n")
    child.wait()
"""


def test_a_process_that_keeps_coming_back_is_reported_alive_and_the_stop_is_not_a_success(tmp_path, standin) -> None:
    """Something outside the run, holding its trainer lock, restarts its trainer: stop must not say
    everything is gone. (`standin` writes the shadow package the respawner starts its trainers from;
    they wait for the lock the respawner holds.)"""
    from runner.registry import run_pids

    run = make_run(tmp_path, state="running")
    respawner = subprocess.Popen([sys.executable, "-c", RESPAWNER, str(run.path), str(tmp_path / "shadow")],
                                 start_new_session=True)
    try:
        wait_for(lambda: run_pids(run.path), what="the first trainer")
        result = stop(run, grace=0.5, poll=0.05)
        assert result.escalated and result.leftover_pids
        assert result.message == (f"demo-1: stopped (escalated to SIGKILL after 0.5s); "
                                  f"processes still alive: {result.leftover_pids}")
    finally:
        (run.path / "stop-respawning").touch()
        respawner.kill()
        respawner.wait()
        for pid in run_pids(run.path):  # the last trainer it started: found by its command line
            try:
                psutil.Process(pid).kill()
            except psutil.Error:
                pass


def test_has_processes_says_whether_stop_would_signal_anything_here(tmp_path, standin) -> None:
    run = make_run(tmp_path, state="running", host="gpu-node-7")
    assert has_processes(run) is False  # nothing of it here (the CLI then says so, without "stopping")
    supervisor = standin(run, "launch")
    supervised(run, supervisor)
    assert has_processes(run) is True

