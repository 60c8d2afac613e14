"""Run control without training (fast; the slow e2e tests repeat these with real runs): liveness from
the run's locks, stop escalation and its checks before signalling, resume's refusals, the newest
events of a run, unusable and full runs directories."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from fixtures import fake_runner
from runner import launch, presets, run_ops
from runner.events import last_step, newest_events
from runner.liveness import RunLocked, hold, holders
from runner.registry import list_runs, run_state
from runner.rundir import RunDir
from runner.stop import stop
from fixtures.processes import cli, reap, tmpfs
from fixtures.processes import wait_until as wait_for
from tests.conftest import python_env

# A stand-in trainer: the command line of a real one (`python -m runner.train RUN_DIR`) from a shadow
# package, holding the trainer lock like runner.train; IGNORE_TERM makes it ignore SIGTERM.
SHADOW_TRAIN = """
import fcntl, os, signal, sys, time
run = sys.argv[1]
if os.environ.get("IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
fd = os.open(os.path.join(run, ".trainer.lock"), os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
open(os.path.join(run, "ready"), "w").close()
while True:
    time.sleep(0.1)
"""


def fake_run(root: Path, name: str = "demo-1", **status) -> RunDir:
    run = RunDir((root / name).resolve())
    run.checkpoints.mkdir(parents=True)
    presets.save(presets.require("demo").config, run.config)
    run.update_status(**status)
    return run


@pytest.fixture
def shadow_trainer(tmp_path: Path):
    """Start stand-in trainers for a run directory; every one is killed (by pid) at the end."""
    package = tmp_path / "shadow" / "runner"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "train.py").write_text(SHADOW_TRAIN)
    started: list[subprocess.Popen] = []

    def start(run: RunDir, ignore_term: bool = False) -> subprocess.Popen:
        env = dict(os.environ, PYTHONPATH=str(tmp_path / "shadow"))
        if ignore_term:
            env["IGNORE_TERM"] = "1"
        proc = subprocess.Popen([sys.executable, "-m", "runner.train", str(run.path)], env=env,
                                cwd=tmp_path / "shadow", start_new_session=True)
        started.append(proc)
        wait_for(lambda: (run.path / "ready").exists(), what="the stand-in trainer")
        return proc

    yield start
    reap(started)


def sleeper() -> subprocess.Popen:
    """An unrelated process in a group of its own (what a stale or forged status.json may name)."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)


# --- liveness ---------------------------------------------------------------------------------------
def test_locks_say_alive_whatever_status_json_says_and_two_holders_are_impossible(tmp_path, shadow_trainer) -> None:
    run = fake_run(tmp_path, state="running", host=os.uname().nodename)
    assert not holders(run).alive
    trainer = shadow_trainer(run)
    assert holders(run).trainer and not holders(run).supervisor
    assert run_state(run).label == "running (unsupervised)"  # its supervisor is gone, it trains on
    run.status_file.write_text("{ garbage")  # a damaged status.json hides nothing
    assert run_state(run).state == "running" and run_state(run).unsupervised
    [info] = list_runs(tmp_path)
    assert info.state == "running" and info.label == "running (unsupervised)"
    with pytest.raises(RunLocked):
        hold(run, "trainer")  # a second trainer cannot take the directory
    with pytest.raises(launch.RunBusy):
        launch.start(run)  # nor can a second launch
    before = run.status_file.read_bytes()
    second = subprocess.run([sys.executable, "-m", "runner.launch", str(run.path)], env=python_env(),
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 3 and "still running" in second.stdout  # a supervisor started by hand
    assert run.status_file.read_bytes() == before and not (run.path / "output.log").exists()
    trainer.kill()
    trainer.wait()
    run.update_status(state="running")
    wait_for(lambda: not holders(run).alive, what="the lock to go with the process")
    assert run_state(run).state == "lost"  # no lock held, status still says running


def test_a_probe_never_makes_a_starting_holder_give_up(tmp_path) -> None:
    run = fake_run(tmp_path, state="starting")
    code = ("import sys; from runner.liveness import hold; from runner.rundir import RunDir; from pathlib import Path\n"
            "hold(RunDir(Path(sys.argv[1])), 'supervisor'); print('held', flush=True); sys.stdin.read()")
    prober = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom pathlib import Path\n"
                               "from runner.liveness import is_held\nfrom runner.rundir import RunDir\n"
                               "r = RunDir(Path(sys.argv[1]))\nend = time.time() + 20\n"
                               "while time.time() < end: is_held(r, 'supervisor')", str(run.path)], env=python_env())
    try:
        for _ in range(5):
            holder = subprocess.Popen([sys.executable, "-c", code, str(run.path)], env=python_env(),
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert holder.stdout.readline().strip() == "held"
            assert holders(run).supervisor
            holder.communicate("")
    finally:
        prober.kill()
        prober.wait()


# --- stop -------------------------------------------------------------------------------------------
def test_stop_escalates_to_sigkill_when_the_trainer_ignores_sigterm(tmp_path, shadow_trainer) -> None:
    run = fake_run(tmp_path, state="running")
    trainer = shadow_trainer(run, ignore_term=True)
    result = stop(run, grace=1.0, poll=0.05)
    assert result.signalled and result.escalated and result.leftover_pids == []
    assert "escalated to SIGKILL" in result.message
    assert trainer.wait(timeout=10) == -signal.SIGKILL
    status = run.read_status()
    assert status["state"] == "stopped" and status["reason"] == "killed after the grace period"
    assert run_state(run).state == "stopped"


def test_stop_with_sigterm_obeyed_needs_no_escalation(tmp_path, shadow_trainer) -> None:
    run = fake_run(tmp_path, state="running")
    trainer = shadow_trainer(run)
    result = stop(run, grace=30.0, poll=0.05)
    assert result.signalled and not result.escalated and trainer.wait(timeout=10) == 0


def test_a_foreign_process_group_in_status_json_is_reported_never_signalled(tmp_path, shadow_trainer) -> None:
    other = sleeper()
    try:
        forged = dict(state="running", pid=other.pid, pgid=other.pid,
                      pid_create_time=psutil.Process(other.pid).create_time())
        idle = fake_run(tmp_path, "idle", **forged)  # nothing of the run is alive
        result = stop(idle, grace=1.0)
        assert not result.signalled and "not this run's" in result.message
        live = fake_run(tmp_path, "live", **forged)
        trainer = shadow_trainer(live, ignore_term=True)  # even escalation must not reach the stranger
        result = stop(live, grace=0.5, poll=0.05)
        assert result.signalled and result.escalated and "not this run's" in result.message
        assert trainer.wait(timeout=10) == -signal.SIGKILL
        assert other.poll() is None and psutil.Process(other.pid).status() != psutil.STATUS_ZOMBIE
    finally:
        other.kill()
        other.wait()


# --- resume -----------------------------------------------------------------------------------------
def checkpointed(run: RunDir, step: int) -> Path:
    """A checkpoint the way the trainer leaves it: with the digest and the config it trained."""
    config = presets.require(run.config).config
    checkpoint = run.checkpoints / f"checkpoint-{step}"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (checkpoint / "tunedeck.json").write_text(json.dumps({"config_digest": presets.config_digest(config)}))
    (checkpoint / run_ops.CHECKPOINT_CONFIG).write_text(presets.dumps(config, with_help=False))
    return checkpoint


def test_resume_refusals_name_the_reason(tmp_path, shadow_trainer) -> None:
    run = fake_run(tmp_path, state="stopped", started=100.0, ended=160.0)
    outcome = run_ops.resume(run)
    assert not outcome.ok and "no checkpoint" in outcome.message
    checkpointed(run, 5)
    changed = run_ops.resume(run, ["training.logging_steps=3"])
    assert not changed.ok and "changed since checkpoint-5" in changed.message and "--force" in changed.message
    schedule = run_ops.resume(run, ["training.learning_rate=5e-4", "training.lr_scheduler_type='linear'"], force=True)
    assert not schedule.ok and "training.learning_rate" in schedule.message
    assert "training.lr_scheduler_type" in schedule.message and "even with --force" in schedule.message
    assert presets.require(run.config).config.training.learning_rate != 5e-4  # config.toml left as it was
    trainer = shadow_trainer(run)
    busy = run_ops.resume(run)
    assert not busy.ok and "still running (unsupervised)" in busy.message
    trainer.kill()
    trainer.wait()
    finished = fake_run(tmp_path, "done", state="finished")
    checkpointed(finished, 9)
    refused = run_ops.resume(finished)
    assert not refused.ok and "already finished" in refused.message
    assert not run_ops.resumable(finished) and run_ops.resumable(run)


def test_forced_resume_applies_other_changes_and_keeps_the_start_time(tmp_path, monkeypatch) -> None:
    fake_runner.use_fake_trainer(monkeypatch)
    run = fake_runner.prepare(tmp_path / "runs", steps=12, step_interval=0.01, lines_per_step=1)
    run.update_status(state="stopped", started=1000.0, segment_started=1000.0, ended=1060.0)
    checkpointed(run, 4)
    outcome = run_ops.resume(run, ["training.logging_steps=2"], force=True)
    assert outcome.ok, outcome.message
    wait_for(lambda: run.read_status().get("state") == "finished" and run.read_status().get("exit_code") is not None,
             60, "the resumed run to finish")
    status = run.read_status()
    assert status["started"] == 1000.0 and status["elapsed_before"] == pytest.approx(60.0)
    assert status["segments"] == 2
    [info] = list_runs(tmp_path / "runs")
    assert info.duration == pytest.approx(60.0 + status["ended"] - status["segment_started"])
    assert presets.require(run.config).config.training.logging_steps == 2
    argv = json.loads(run.command.read_text())["argv"]
    assert argv[-4:] == ["-m", "runner.train", str(run.path), "--resume"]  # rebuilt by build_argv


def test_a_tampered_command_json_is_never_executed(tmp_path, monkeypatch) -> None:
    fake_runner.use_fake_trainer(monkeypatch)
    run = fake_runner.prepare(tmp_path / "runs", steps=3, step_interval=0.01, lines_per_step=1)
    marker = tmp_path / "pwned"
    run.command.write_text(json.dumps({"argv": [sys.executable, "-c", f"open({str(marker)!r}, 'w')"],
                                       "cwd": str(tmp_path)}))
    launch.start(run)
    wait_for(lambda: run.read_status().get("exit_code") is not None, 60, "the run to end")
    assert run.read_status()["state"] == "finished" and not marker.exists()


# --- events -----------------------------------------------------------------------------------------
def test_newest_events_skip_cut_corrupt_and_unfinished_lines(tmp_path) -> None:
    path = tmp_path / "events.jsonl"
    lines = [json.dumps({"type": "log", "step": i, "loss": 1.0 / (i + 1), "pad": "x" * 50}) for i in range(200)]
    path.write_text("\n".join(lines[:150]) + "\nnot json\n" + "\n".join(lines[150:]) + '\n{"type": "log", "st')
    newest = newest_events(path, 1000)
    assert newest and newest[-1]["step"] == 199 and all(e["type"] == "log" for e in newest)
    assert [e["step"] for e in newest] == list(range(newest[0]["step"], 200))
    assert last_step(path) == 199
    assert last_step(tmp_path / "missing.jsonl") == 0 and newest_events(tmp_path / "missing.jsonl") == []


# --- where runs can go ------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["file", "proc"])
def test_an_unusable_runs_directory_is_refused_before_anything_is_created(tmp_path, where) -> None:
    target = tmp_path / "a-file" if where == "file" else Path("/proc/tunedeck-runs")
    if where == "file":
        target.write_text("not a directory")
    out = cli("run", "demo", "--runs-dir", str(target), env=python_env(), cwd=tmp_path, timeout=120)
    assert out.returncode == 2, out.stderr
    assert str(target) in out.stderr and ("is a file" in out.stderr or "proc pseudo-filesystem" in out.stderr)
    assert "internal error" not in out.stderr and "Traceback" not in out.stderr
    assert list_runs() == []


@pytest.fixture
def full_tmpfs(tmp_path: Path):
    """A small tmpfs, filled to the last byte; unmounted at the end."""
    with tmpfs(tmp_path / "small", "512k") as mount_point:
        (mount_point / "runs").mkdir()
        with open(mount_point / "filler", "wb", buffering=0) as filler:
            try:
                while True:
                    filler.write(b"\0" * 4096)
            except OSError:
                pass
        yield mount_point


def test_a_full_disk_is_disk_full_with_the_free_space_and_leaves_nothing(full_tmpfs: Path) -> None:
    runs = full_tmpfs / "runs"
    out = cli("run", "demo", "--runs-dir", str(runs), env=python_env(), timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "disk_full" in out.stderr and str(runs) in out.stderr and "free" in out.stderr, out.stderr
    assert "internal error" not in out.stderr
    assert list(runs.iterdir()) == []  # no half-made run directory
    listed = cli("runs", env=python_env(), timeout=60)
    assert listed.returncode == 0 and "no runs" in listed.stdout


def test_export_to_a_full_disk_is_disk_full_not_an_internal_error(full_tmpfs: Path) -> None:
    target = full_tmpfs / "train.sh"
    out = cli("export", "demo", "--to", "accelerate-cmd", "-o", str(target), env=python_env(), timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "disk_full" in out.stderr and str(target) in out.stderr and "free" in out.stderr
    assert "internal error" not in out.stderr and not target.exists()
