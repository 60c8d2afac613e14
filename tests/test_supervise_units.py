"""Starting and supervising a run, in this process (fast: the trainer is tests/fixtures/fake_runner.py
behind the real `accelerate launch` argv): what `prepare` writes, what `start` records and how it
detaches the run, what the supervisor does when it cannot start, when the trainer dies without a
word, when it was asked to stop, and how `run_cuda`/`detect_cuda` decide the target."""

from __future__ import annotations

import functools

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import psutil
import pytest

from fixtures import fake_runner
from fixtures.processes import wait_until
from runner import launch, presets
from runner.diagnose import diagnose_text
from runner.events import read_events
from runner.liveness import holders, lock_file
from runner.problems import ConfigError
from runner.registry import list_runs, run_pids
from runner.rundir import RunDir
from runner.runs_home import indexed
from runner.schema import Config
from tests.conftest import python_env
from tests.test_gpu_probe import fake_nvml


# polled often: some tests catch a state that lasts only a moment
wait_for = functools.partial(wait_until, every=0.02)


def supervised_while(as_supervisor, run: RunDir, action) -> int:
    """Supervise `run` in this process while `action` runs in a thread; the supervisor's exit code."""
    import threading

    thread = threading.Thread(target=action)
    thread.start()
    try:
        return as_supervisor(run)
    finally:
        thread.join()


def ended(run: RunDir) -> dict:
    """status.json once the supervisor has recorded the exit code (the last thing it writes)."""
    return wait_for(lambda: run.read_status() if run.read_status().get("exit_code") is not None else None,
                    what="the supervisor to record the end")


# --- prepare -----------------------------------------------------------------------------------------
def test_prepare_writes_the_run_and_indexes_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    config = presets.require("demo").config.model_copy(update={"extends": "base"})
    before = time.time()
    run = launch.prepare(config, preset_name="demo", runs_dir=tmp_path / "runs", cuda=False)
    status = run.read_status()
    assert status["state"] == "starting" and status["preset"] == "demo" and status["cuda"] is False
    assert status["host"] == socket.gethostname() and before <= status["created"] <= time.time()
    assert run.path.parent == tmp_path / "runs" and run.path in indexed()
    assert presets.require(run.config).config.extends == ""  # self-contained: no parent preset to change it
    command = json.loads(run.command.read_text())
    assert command["argv"] == launch.build_argv(config, run.path, cuda=False)
    assert command["cwd"] == os.getcwd() and command["host"] == socket.gethostname()
    assert "HF_TOKEN" in command["secret_env_inherited"] and "hf_secret_value" not in run.command.read_text()
    assert set(command["env_set"]) == {*launch.RUN_ENV, "PYTHONPATH"}
    assert not run.accelerate_config.exists()  # DDP/single process: flags only


def test_prepare_at_an_exact_path_with_a_sharded_strategy_writes_the_accelerate_config(tmp_path) -> None:
    config = presets.require("demo", ["launch.strategy='fsdp'", "launch.num_processes=2"]).config
    run = launch.prepare(config, preset_name="demo", run_dir=tmp_path / "exact", cuda=True)
    assert run.path == (tmp_path / "exact").resolve()
    written = json.loads(run.accelerate_config.read_text())
    assert written == launch.accelerate_config(config, cuda=True) and written["distributed_type"] == "FSDP"
    assert run.read_status()["cuda"] is True


def test_prepare_refuses_a_missing_tracker_before_creating_anything(tmp_path) -> None:
    config = presets.require("demo", ["training.report_to='wandb'"]).config
    try:  # wandb is not a test dependency; skip where someone installed it
        import wandb  # noqa: F401
        pytest.skip("wandb is installed here")
    except ImportError:
        pass
    with pytest.raises(ConfigError) as raised:
        launch.prepare(config, preset_name="demo", runs_dir=tmp_path / "runs", cuda=False)
    assert raised.value.problems[0].key == "training.report_to"
    assert not (tmp_path / "runs").exists() and indexed() == []


def test_a_run_that_cannot_be_indexed_leaves_no_half_made_directory(tmp_path, monkeypatch) -> None:
    state = tmp_path / "state-is-a-file"
    state.write_text("")
    monkeypatch.setenv("TUNEDECK_STATE_DIR", str(state))  # the index cannot be written there
    with pytest.raises(OSError):
        launch.prepare(presets.require("demo").config, preset_name="demo", runs_dir=tmp_path / "runs", cuda=False)
    assert list((tmp_path / "runs").iterdir()) == []


def test_prepare_decides_cuda_from_the_preset_and_this_machine(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # no NVIDIA library here
    from runner import gpu

    gpu.reset()
    try:
        cpu = launch.prepare(presets.require("demo").config, preset_name="demo", runs_dir=tmp_path, cuda=None)
        gpu_run = launch.prepare(presets.require("demo", ["launch.device='cuda'"]).config, preset_name="demo",
                                 runs_dir=tmp_path, cuda=None)
    finally:
        gpu.reset()
    assert cpu.read_status()["cuda"] is False and "--cpu" in json.loads(cpu.command.read_text())["argv"]
    assert gpu_run.read_status()["cuda"] is True  # prepared here for a GPU machine


# --- hardware ----------------------------------------------------------------------------------------
def test_detect_cuda_counts_the_gpus_nvml_reports(monkeypatch) -> None:
    from runner import gpu

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(n_gpus=3))
    gpu.reset()
    try:
        assert launch.detect_cuda() == (True, 3)
    finally:
        gpu.reset()
    monkeypatch.setitem(sys.modules, "pynvml", None)
    gpu.reset()
    try:
        cuda, count = launch.detect_cuda()
    finally:
        gpu.reset()
    assert cuda is False and count == 0


def test_run_cuda_is_what_the_run_was_prepared_for(tmp_path) -> None:
    run = RunDir(tmp_path)
    run.update_status(cuda=True)
    assert launch.run_cuda(run) is True
    run.update_status(cuda=False)
    assert launch.run_cuda(run) is False
    run.status_file.write_text("{ damaged")
    assert launch.run_cuda(run) is launch.detect_cuda()[0]  # then this machine answers


def test_run_argv_rebuilds_the_command_from_config_toml(tmp_path) -> None:
    run = launch.prepare(presets.require("demo", ["launch.num_processes=2"]).config, preset_name="demo",
                         runs_dir=tmp_path, cuda=False)
    config, argv = launch.run_argv(run, resume=True)
    assert config.launch.num_processes == 2
    assert argv == launch.build_argv(config, run.path, cuda=False, resume=True) and argv[-1] == "--resume"
    run.config.write_text("[training]\nlearning_rate = 'fast'\n")
    with pytest.raises(ConfigError):
        launch.run_argv(run)


# --- start -------------------------------------------------------------------------------------------
def test_start_detaches_the_supervisor_and_records_it(tmp_path, monkeypatch) -> None:
    fake_runner.use_fake_trainer(monkeypatch)
    run = fake_runner.prepare(tmp_path / "runs", steps=100, step_interval=0.02, lines_per_step=1)
    run.update_status(exit_code=9, reason="old", message="old", suggestion="old", ended=1.0, stop_requested=2.0)
    run.log.write_text("earlier launch\n")
    workdir = tmp_path / "launched-from"
    workdir.mkdir()
    command = json.loads(run.command.read_text())
    run.command.write_text(json.dumps(dict(command, cwd=str(workdir))))
    before = time.time()
    proc = launch.start(run)
    status = run.read_status()
    try:
        assert status["pid"] == status["pgid"] == proc.pid
        assert abs(status["pid_create_time"] - psutil.Process(proc.pid).create_time()) < 0.01
        assert os.getsid(proc.pid) == proc.pid and os.getpgid(proc.pid) == proc.pid  # its own session
        assert psutil.Process(proc.pid).cwd() == str(workdir)  # data paths are relative to it
        assert psutil.Process(proc.pid).cmdline()[1:] == ["-m", "runner.launch", str(run.path)]
    finally:
        proc.wait(timeout=60)
    assert before <= status["started"] == status["segment_started"] <= time.time()
    assert status["elapsed_before"] == 0.0 and status["segments"] == 1
    assert all(status[k] is None for k in ("exit_code", "reason", "message", "suggestion", "ended", "stop_requested"))
    final = ended(run)
    assert final["state"] == "finished" and final["exit_code"] == 0
    log = run.log.read_text()
    assert log.startswith("earlier launch\n") and "[tunedeck]" in log and "launching:" in log  # appended
    recorded = json.loads(run.command.read_text())
    assert recorded["cwd"] == str(workdir) and "resumed" not in recorded
    assert recorded["argv"] == launch.build_argv(presets.require(run.config).config, run.path, cuda=False)


def test_start_gives_the_supervisor_a_clean_environment_and_no_terminal(tmp_path, monkeypatch) -> None:
    fake_runner.use_fake_trainer(monkeypatch)
    run = fake_runner.prepare(tmp_path / "runs", steps=40, step_interval=0.05, lines_per_step=1)
    run.command.write_text(json.dumps({"argv": [], "cwd": str(tmp_path / "gone")}))  # cwd no longer there
    monkeypatch.chdir(tmp_path)
    read_end, write_end = os.pipe()  # stands for the terminal `start` was called from
    saved_stdin = os.dup(0)
    os.dup2(read_end, 0)
    held = os.open(tmp_path / "held-by-the-caller", os.O_RDWR | os.O_CREAT)  # e.g. a lock of the TUI's
    os.set_inheritable(held, True)
    try:
        proc = launch.start(run)
    finally:
        os.dup2(saved_stdin, 0)
        for fd in (saved_stdin, read_end, write_end, held):
            os.close(fd)
    try:
        supervisor = psutil.Process(proc.pid)
        env = wait_for(lambda: supervisor.environ() or None, what="the supervisor's environment")
        assert all(env.get(k) == v for k, v in launch.RUN_ENV.items())
        assert supervisor.cwd() == str(tmp_path)
        assert os.readlink(f"/proc/{proc.pid}/fd/0") == os.devnull
        assert os.readlink(f"/proc/{proc.pid}/fd/1") == os.readlink(f"/proc/{proc.pid}/fd/2") == str(run.log)
        assert str(tmp_path / "held-by-the-caller") not in [f.path for f in supervisor.open_files()]
    finally:
        from runner.stop import stop

        stop(run, grace=30.0, poll=0.05)
        proc.wait(timeout=60)


@pytest.mark.parametrize("damaged", ["[1, 2]", "{ not json", '{"cwd": 7}'])
def test_a_damaged_command_json_starts_from_the_current_directory(tmp_path, monkeypatch, damaged) -> None:
    fake_runner.use_fake_trainer(monkeypatch)
    run = fake_runner.prepare(tmp_path / "runs", steps=20, step_interval=0.05, lines_per_step=1)
    run.command.write_text(damaged)
    monkeypatch.chdir(tmp_path)
    proc = launch.start(run)
    try:
        assert psutil.Process(proc.pid).cwd() == str(tmp_path)
        assert json.loads(run.command.read_text())["cwd"] == str(tmp_path)  # rewritten whole
    finally:
        from runner.stop import stop

        stop(run, grace=30.0, poll=0.05)
        proc.wait(timeout=60)


def test_start_refuses_a_run_whose_lock_is_held(tmp_path, monkeypatch) -> None:
    run = fake_runner.prepare(tmp_path / "runs", steps=2)
    before = run.status_file.read_bytes()
    fd = os.open(lock_file(run, "trainer"), os.O_RDWR | os.O_CREAT)
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(launch.RunBusy, match="still running"):
            launch.start(run)
    finally:
        os.close(fd)
    assert run.status_file.read_bytes() == before and not run.log.exists()


def test_a_resumed_start_keeps_the_first_start_and_adds_up_the_launches(tmp_path, monkeypatch) -> None:
    fake_runner.use_fake_trainer(monkeypatch)
    run = fake_runner.prepare(tmp_path / "runs", steps=3, step_interval=0.01, lines_per_step=1)
    run.update_status(state="stopped", started=1000.0, segment_started=1030.0, elapsed_before=5.0, segments=2,
                      ended=1090.0)
    fake_runner.save_checkpoint(run, 1)
    proc = launch.start(run, resume=True)
    status = run.read_status()
    proc.wait(timeout=60)
    assert status["started"] == 1000.0 and status["elapsed_before"] == pytest.approx(65.0)
    assert status["segments"] == 3 and status["segment_started"] > 1090.0
    command = json.loads(run.command.read_text())
    assert command["argv"][-1] == "--resume" and command["resumed"] == status["segment_started"]
    assert ended(run)["state"] == "finished"
    assert read_events(run.events)[0]["resumed_from"] == "checkpoint-1"  # the trainer was told to resume


def test_a_resumed_run_that_never_recorded_its_end_counts_up_to_its_last_update(tmp_path, monkeypatch) -> None:
    fake_runner.use_fake_trainer(monkeypatch)
    run = fake_runner.prepare(tmp_path / "runs", steps=2, step_interval=0.01, lines_per_step=1)
    # killed with the machine: no end recorded, the last sign of life is the last status update
    run.status_file.write_text(json.dumps({"state": "running", "started": 1000.0, "segment_started": 1000.0,
                                           "updated": 1075.0, "cuda": False}))
    proc = launch.start(run, resume=True)
    status = run.read_status()
    proc.wait(timeout=60)
    assert status["started"] == 1000.0 and status["elapsed_before"] == pytest.approx(75.0)
    ended(run)


def test_start_rewrites_the_accelerate_config_from_config_toml(tmp_path, monkeypatch) -> None:
    """accelerate_config.json is derived data: a stale or tampered one never decides how a run starts."""
    fake_runner.use_fake_trainer(monkeypatch)
    run = fake_runner.prepare(tmp_path / "runs", steps=2, step_interval=0.01, lines_per_step=1)
    config = presets.require("demo", ["launch.strategy='fsdp'", "launch.num_processes=2"]).config
    presets.save(config, run.config)
    run.accelerate_config.write_text(json.dumps({"distributed_type": "NO", "num_processes": 64}))
    proc = launch.start(run)
    proc.wait(timeout=60)
    assert json.loads(run.accelerate_config.read_text()) == launch.accelerate_config(config, cuda=False)


def test_the_creation_time_of_a_process_that_is_gone_is_unknown() -> None:
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert launch._create_time(proc.pid) is None
    assert launch._create_time(os.getpid()) == psutil.Process().create_time()


def test_a_resumed_start_of_a_run_with_a_damaged_history_counts_from_now(tmp_path, monkeypatch) -> None:
    fake_runner.use_fake_trainer(monkeypatch)
    run = fake_runner.prepare(tmp_path / "runs", steps=2, step_interval=0.01, lines_per_step=1)
    run.status_file.write_text(json.dumps({"state": "stopped", "started": "yesterday", "segments": "many",
                                           "cuda": False}))
    proc = launch.start(run, resume=True)
    status = run.read_status()
    proc.wait(timeout=60)
    assert status["started"] == status["segment_started"] and status["segments"] == 2
    assert status["elapsed_before"] == 0.0
    ended(run)


# --- the supervisor, run in this process ----------------------------------------------------------------
@pytest.fixture
def as_supervisor(monkeypatch):
    """Run launch.supervise here as `start` runs it there: in a process group of its own, output to
    output.log. Afterwards its lock is released and its signal handlers undone, as when it exits."""
    try:
        old_group = os.getpgid(0)
        os.setpgid(0, 0)
    except OSError as exc:  # a session leader cannot change its group
        pytest.skip(f"cannot take a process group of our own here: {exc}")
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}

    def supervise(run: RunDir, resume: bool = False) -> int:
        log = os.open(run.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        saved = os.dup(1), os.dup(2)
        out = open(log, "w", buffering=1, closefd=False)
        os.dup2(log, 1)  # for the trainer it starts
        os.dup2(log, 2)
        streams = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = out  # for its own messages
        try:
            return launch.supervise(run, resume=resume)
        finally:
            sys.stdout, sys.stderr = streams
            out.close()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in (log, *saved):
                os.close(fd)
            lock = lock_file(run, "supervisor")
            for name in os.listdir("/proc/self/fd"):
                try:
                    if os.readlink(f"/proc/self/fd/{name}") == lock:
                        os.close(int(name))
                except OSError:
                    pass

    yield supervise
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    try:
        os.setpgid(0, old_group)
    except OSError:
        pass


def test_the_supervisor_runs_the_trainer_and_records_its_exit(tmp_path, monkeypatch, as_supervisor) -> None:
    fake_runner.use_fake_trainer(monkeypatch)
    run = fake_runner.prepare(tmp_path / "runs", steps=3, step_interval=0.01, lines_per_step=1)
    before = time.time()
    assert as_supervisor(run) == 0
    status = run.read_status()
    assert status["state"] == "finished" and status["exit_code"] == 0 and before <= status["ended"] <= time.time()
    assert status["reason"] == "completed"  # what the trainer recorded stands
    log = run.log.read_text()
    config = presets.require(run.config).config
    assert f"launching: {' '.join(launch.build_argv(config, run.path, cuda=False))}" in log
    import re

    assert re.search(r"^\[tunedeck\] \d{4}-\d\d-\d\d \d\d:\d\d:\d\d launching: ", log, re.M)  # when, for people
    assert "exited with code 0; state finished" in log
    assert [e["type"] for e in read_events(run.events)][-1] == "run_finished"
    assert not holders(run).alive


def test_the_supervisor_passes_resume_to_the_trainer(tmp_path, monkeypatch, as_supervisor) -> None:
    fake_runner.use_fake_trainer(monkeypatch)
    run = fake_runner.prepare(tmp_path / "runs", steps=4, step_interval=0.01, lines_per_step=1)
    fake_runner.save_checkpoint(run, 2)
    assert as_supervisor(run, resume=True) == 0
    assert read_events(run.events)[0]["resumed_from"] == "checkpoint-2"


def test_a_second_supervisor_exits_without_touching_the_run(tmp_path, monkeypatch, as_supervisor) -> None:
    run = fake_runner.prepare(tmp_path / "runs", steps=2)
    before = run.status_file.read_bytes()
    import subprocess

    for role in ("supervisor", "trainer"):
        holder = subprocess.Popen([sys.executable, "-c", "import sys; from pathlib import Path\n"
                                   "from runner.liveness import hold; from runner.rundir import RunDir\n"
                                   f"hold(RunDir(Path(sys.argv[1])), {role!r}); print('held', flush=True)\n"
                                   "sys.stdin.read()", str(run.path)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=python_env())
        try:
            assert holder.stdout.readline().strip() == "held"
            assert as_supervisor(run) == 3
        finally:
            holder.communicate("")
        assert run.status_file.read_bytes() == before and not run.events.exists()
    log = run.log.read_text()
    assert "not starting: another supervisor is already running" in log
    assert f"not starting: a trainer of {run.path} is still running (stop it first)" in log


def test_a_config_that_no_longer_validates_fails_the_run_with_its_reason(tmp_path, monkeypatch, as_supervisor) -> None:
    run = fake_runner.prepare(tmp_path / "runs", steps=2)
    run.config.write_text("[training]\nlearning_rate = 'fast'\n")
    assert as_supervisor(run) == 0
    status = run.read_status()
    assert status["state"] == "failed" and status["exit_code"] == 2 and status["reason"] == "config_error"
    [event] = read_events(run.events)
    assert event["type"] == "run_failed" and event["reason"] == "config_error" and "learning_rate" in event["message"]


def test_a_trainer_that_cannot_be_started_fails_the_run(tmp_path, monkeypatch, as_supervisor) -> None:
    run = fake_runner.prepare(tmp_path / "runs", steps=2)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "venv-that-was-deleted" / "python"))
    assert as_supervisor(run) == 0
    status = run.read_status()
    assert status["state"] == "failed" and status["exit_code"] == 127
    missing = f"[Errno 2] No such file or directory: '{sys.executable}'"
    assert status["message"] == diagnose_text(missing, 127).message == "exited with code 127"
    assert "venv-that-was-deleted" in run.log.read_text() or "venv-that-was-deleted" in status["message"]
    assert read_events(run.events)[-1]["type"] == "run_failed"


def test_a_trainer_that_dies_without_a_word_is_diagnosed_from_the_log(tmp_path, monkeypatch, as_supervisor) -> None:
    fake_runner.use_fake_trainer(monkeypatch)
    run = fake_runner.prepare(tmp_path / "runs", steps=2)
    (run.path / "fake.json").write_text("{ not json")  # the trainer dies at start, before any event
    assert as_supervisor(run) == 0
    status = run.read_status()
    assert status["state"] == "failed" and status["exit_code"] == 1
    diagnosis = diagnose_text(run.log.read_text(), 1, str(run.path))
    assert (status["reason"], status["message"], status["suggestion"]) == (
        diagnosis.reason, diagnosis.message, diagnosis.suggestion)
    [event] = read_events(run.events)
    assert event["type"] == "run_failed" and "JSONDecodeError" in event["traceback_tail"]


def test_the_supervisor_ignores_hangups_and_stop_signals_and_still_records_the_end(tmp_path, monkeypatch,
                                                                                    as_supervisor) -> None:
    """Closing the terminal, or `tunedeck stop` signalling the group, must not take the supervisor
    down before it has recorded how the run ended."""

    fake_runner.use_fake_trainer(monkeypatch)
    run = fake_runner.prepare(tmp_path / "runs", steps=30, step_interval=0.02, lines_per_step=1)
    seen: list[object] = []

    def hang_up() -> None:
        wait_for(lambda: run.read_status().get("state") == "running", what="the trainer")
        seen.extend(signal.getsignal(s) for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT))
        if all(callable(h) for h in seen):  # only when handled: the default would end this test process
            os.kill(os.getpid(), signal.SIGHUP)

    assert supervised_while(as_supervisor, run, hang_up) == 0
    assert seen and all(callable(h) for h in seen)
    assert run.read_status()["state"] == "finished"  # the trainer was not signalled and finished


def test_a_trainer_killed_by_a_signal_is_failed_as_killed_with_advice(tmp_path, monkeypatch, as_supervisor) -> None:
    """e.g. the kernel's OOM killer: no word from the trainer, only its exit by SIGKILL."""

    fake_runner.use_fake_trainer(monkeypatch)
    run = fake_runner.prepare(tmp_path / "runs", steps=500, step_interval=0.02, lines_per_step=1)

    def oom_killer() -> None:
        pid = wait_for(lambda: run.read_status().get("trainer_pid"), what="the trainer")
        wait_for(lambda: run.events.exists(), what="the trainer's first event")
        os.kill(pid, signal.SIGKILL)

    assert supervised_while(as_supervisor, run, oom_killer) == 0
    status = run.read_status()
    assert status["state"] == "failed" and status["exit_code"] == -signal.SIGKILL and status["reason"] == "killed"
    assert "SIGKILL" in status["message"] and "resume" in status["suggestion"]


# --- recording the end --------------------------------------------------------------------------------
@pytest.mark.parametrize("code", [0, -signal.SIGTERM, -signal.SIGINT, 128 + signal.SIGTERM])
def test_a_stop_before_the_trainer_started_is_a_stop(tmp_path, code) -> None:
    run = fake_runner.prepare(tmp_path / "runs", steps=2)
    from runner.events import EventWriter

    EventWriter(run.events).emit("log", 40, loss=1.0)  # a resumed run: its earlier launch got to step 40
    assert launch._record_end(run, code, diagnose_text("", code), [signal.SIGTERM]) == 0
    status = run.read_status()
    assert (status["state"], status["reason"], status["message"]) == (
        "stopped", "stop requested", "stopped before the trainer started")
    assert status["exit_code"] == code and status["ended"] >= status["created"]
    event = read_events(run.events)[-1]
    assert event["type"] == "run_stopped" and event["reason"] == "stop requested" and event["checkpoint"] is None
    assert event["step"] == 40


@pytest.mark.parametrize(("code", "signals"), [(1, [signal.SIGTERM]), (-signal.SIGKILL, [signal.SIGTERM]),
                                               (-signal.SIGTERM, []), (0, [])])
def test_an_unreported_end_without_a_stop_is_a_failure(tmp_path, code, signals) -> None:
    run = fake_runner.prepare(tmp_path / "runs", steps=2)
    run.log.write_text("step 3/10 | loss 4.0\nTraceback (most recent call last):\nRuntimeError: CUDA out of memory\n")
    diagnosis = diagnose_text(run.log.read_text(), code)
    launch._record_end(run, code, diagnosis, signals)
    status = run.read_status()
    assert status["state"] == "failed" and status["exit_code"] == code
    assert (status["reason"], status["message"], status["suggestion"]) == (
        diagnosis.reason, diagnosis.message, diagnosis.suggestion)
    [event] = read_events(run.events)
    assert event["type"] == "run_failed" and event["reason"] == diagnosis.reason
    assert event["message"] == diagnosis.message and event["suggestion"] == diagnosis.suggestion
    assert "CUDA out of memory" in event["traceback_tail"]


def test_an_end_the_trainer_recorded_is_kept(tmp_path) -> None:
    run = fake_runner.prepare(tmp_path / "runs", steps=2)
    run.update_status(state="stopped", reason="stop requested (SIGTERM)", message="stopped at step 4")
    launch._record_end(run, 0, diagnose_text("", 0), [signal.SIGTERM])
    status = run.read_status()
    assert (status["state"], status["reason"], status["message"], status["exit_code"]) == (
        "stopped", "stop requested (SIGTERM)", "stopped at step 4", 0)
    assert not run.events.exists()


def test_a_run_directory_that_vanished_is_said_in_the_log_not_a_traceback(tmp_path, capsys) -> None:
    import shutil

    run = fake_runner.prepare(tmp_path / "runs", steps=2)
    shutil.rmtree(run.path)
    assert launch._settle(run, 0, diagnose_text("", 0), []) == 1
    assert "could not record the end of the run" in capsys.readouterr().out


def test_the_supervisor_waits_for_every_process_of_its_group(tmp_path, as_supervisor) -> None:
    """accelerate can exit before its workers: the end is recorded once they are gone too."""
    import subprocess

    run = RunDir(tmp_path)
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.0)"])  # in our group
    launch._wait_for_group(run, timeout=60.0)
    assert worker.poll() is not None
    stuck = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        launch._wait_for_group(run, timeout=0.5)  # gives up: the supervisor still records the end
        assert stuck.poll() is None
    finally:
        stuck.kill()
        stuck.wait()


# --- layouts ------------------------------------------------------------------------------------------
def test_multi_node_without_an_address_is_refused_with_the_fix() -> None:
    two = Config.model_validate({"launch": {"num_machines": 2, "num_processes": 4}})
    with pytest.raises(ConfigError) as raised:
        launch.require_address(two, "a launch from here")
    [problem] = raised.value.problems
    assert problem.key == "launch.main_process_ip" and problem.severity == "error"
    assert problem.message == "2 machines need the main node's address for a launch from here"
    assert problem.hint == ("set launch.main_process_ip, or use the sbatch export / `tunedeck run --slurm`, which "
                            "take it from the allocation")
    launch.require_address(Config.model_validate({"launch": {"num_machines": 2, "main_process_ip": "10.0.0.1"}}), "x")
    launch.require_address(Config(), "x")  # one machine: no address needed


# --- a run stopped while accelerate is still starting -----------------------------------------------------
GATED_ACCELERATE = r"""
import os, sys, time
from pathlib import Path
args = sys.argv[1:]
run = args[args.index("-m") + 2]
while not os.path.exists(os.path.join(run, "gate")):  # accelerate still loading, no trainer yet
    time.sleep(0.02)
os.execv(sys.executable, [sys.executable, os.environ["FAKE_RUNNER"], *args[args.index("-m"):]])
"""


@pytest.fixture
def gated_accelerate(tmp_path, monkeypatch):
    """`accelerate launch` that starts the (fake) trainer only once RUN/gate exists."""
    package = tmp_path / "gated" / "accelerate" / "commands"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "launch.py").write_text(GATED_ACCELERATE)
    root = Path(fake_runner.__file__).resolve().parents[2]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path / "gated"), str(root)]))
    monkeypatch.setenv("FAKE_RUNNER", fake_runner.__file__)


def test_a_started_run_is_starting_until_its_trainer_runs(tmp_path, gated_accelerate) -> None:
    run = fake_runner.prepare(tmp_path / "runs", steps=2, step_interval=0.01, lines_per_step=1)
    run.update_status(state="stopped")  # e.g. a run being resumed
    fake_runner.save_checkpoint(run, 1)
    proc = launch.start(run, resume=True)
    try:
        wait_for(lambda: len(run_pids(run.path)) >= 2, what="accelerate to start")
        assert run.read_status()["state"] == "starting"
        [info] = [r for r in list_runs(tmp_path / "runs") if r.run.path == run.path]
        assert info.state == "starting"
    finally:
        (run.path / "gate").touch()
        proc.wait(timeout=60)
    assert ended(run)["state"] == "finished"


def test_a_stop_while_accelerate_starts_stops_the_group_and_is_recorded_as_a_stop(tmp_path, gated_accelerate) -> None:
    from runner.stop import stop

    run = fake_runner.prepare(tmp_path / "runs", steps=2, step_interval=0.01, lines_per_step=1)
    proc = launch.start(run)
    try:
        wait_for(lambda: len(run_pids(run.path)) >= 2, what="accelerate to start")
        result = stop(run, grace=30.0, poll=0.05)
    finally:
        (run.path / "gate").touch()
        proc.wait(timeout=60)
    assert not result.escalated and result.leftover_pids == [] and result.state == "stopped"
    status = run.read_status()
    assert (status["state"], status["reason"], status["message"]) == (
        "stopped", "stop requested", "stopped before the trainer started")
    assert status["exit_code"] in (-signal.SIGTERM, 128 + signal.SIGTERM)
    assert [e["type"] for e in read_events(run.events)] == ["run_stopped"]  # one end, and no trainer ran


CRASHING_ACCELERATE = r"""
import sys
print("Traceback (most recent call last):", file=sys.stderr)
print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", file=sys.stderr)
for i in range(30):  # torchrun's report of the failed worker comes after the worker's own error
    print(f"[rank0]: torch.distributed.elastic.multiprocessing.errors.ChildFailedError line {i}", file=sys.stderr)
sys.exit(1)
"""


def fake_accelerate(root: Path, launch_script: str, monkeypatch) -> None:
    """An `accelerate` package whose `accelerate.commands.launch` is `launch_script`, first on PYTHONPATH."""
    package = root / "accelerate" / "commands"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "launch.py").write_text(launch_script)
    monkeypatch.setenv("PYTHONPATH", str(root))


def test_an_out_of_memory_error_above_the_launcher_s_long_report_is_still_found(tmp_path, monkeypatch,
                                                                                 as_supervisor) -> None:
    fake_accelerate(tmp_path / "crashing", CRASHING_ACCELERATE, monkeypatch)
    run = fake_runner.prepare(tmp_path / "runs", steps=2)
    assert as_supervisor(run) == 0
    status = run.read_status()
    assert status["state"] == "failed" and status["exit_code"] == 1 and status["reason"] == "oom"


def test_a_trainer_that_ran_out_of_disk_is_told_where_and_how_much_is_free(tmp_path, monkeypatch,
                                                                          as_supervisor) -> None:
    from runner.rundir import disk_full_message

    fake_accelerate(tmp_path / "full", "import sys\nprint('OSError: [Errno 28] No space left on device', "
                                        "file=sys.stderr)\nsys.exit(1)\n", monkeypatch)
    run = fake_runner.prepare(tmp_path / "runs", steps=2)
    assert as_supervisor(run) == 0
    status = run.read_status()
    assert status["reason"] == "disk_full" and status["message"].startswith(disk_full_message(str(run.path)))


def test_prepare_for_auto_on_a_gpu_machine_targets_cuda(tmp_path, monkeypatch) -> None:
    from runner import gpu

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(n_gpus=2))
    gpu.reset()
    try:
        run = launch.prepare(presets.require("demo").config, preset_name="demo", runs_dir=tmp_path, cuda=None)
    finally:
        gpu.reset()
    assert run.read_status()["cuda"] is True and "--cpu" not in json.loads(run.command.read_text())["argv"]

