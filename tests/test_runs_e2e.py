"""Runs as a user meets them over SSH, end to end with the real launcher and the demo preset: started
in one directory, found, watched, stopped and resumed from another, in a fresh environment (same
HOME, no TUNEDECK_* variables but the test's isolated state/config/cache), through the faults that
used to hide, double or hijack a run: kill -9 of the supervisor, a damaged status.json, a status.json
naming a stranger's process group, a tampered command.json, a full disk.

One long run carries the live scenarios (each real launch costs ~30-60 s on a small CPU box).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from runner.events import read_events
from runner.registry import run_pids
from runner.rundir import FINAL_STATES, RunDir
from fixtures.processes import cli, run_dir_of, tmpfs
from fixtures.processes import wait_until as wait_for
from tests.conftest import python_env

pytestmark = pytest.mark.slow

LONG = ("--set", "training.max_steps=5000", "--set", "training.logging_steps=1", "--set", "training.eval_strategy='no'",
        "--set", "training.save_steps=100000")


@pytest.fixture(scope="module")
def login(shared_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A fresh login's environment and two working directories."""
    home = tmp_path_factory.mktemp("login")
    env = {k: v for k, v in python_env().items() if not k.startswith("TUNEDECK_")}  # keeps PYTHONPATH: this checkout
    env.update(TUNEDECK_STATE_DIR=str(home / "state"), TUNEDECK_CONFIG_DIR=str(home / "config"),
               TUNEDECK_CACHE_DIR=str(shared_cache_dir), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    for d in ("a", "b"):
        (home / d).mkdir()
    return {"env": env, "a": home / "a", "b": home / "b", "home": home}


def tunedeck(login: dict, where: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return cli(*args, env=login["env"], cwd=login[where], timeout=timeout)


def listed(login: dict, name: str) -> dict:
    return next(r for r in json.loads(tunedeck(login, "b", "runs", "--json").stdout) if r["name"] == name)


def logged(run: RunDir, after: int = 0) -> bool:
    return any(e["type"] == "log" and e["step"] > after for e in read_events(run.events))


@pytest.fixture
def cleanup():
    """Run directories whose processes are killed (by pid) at the end, whatever happened."""
    runs: list[RunDir] = []
    yield runs
    for run in runs:
        for pid in run_pids(run.path):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_run_survives_its_supervisor_damaged_files_and_forgeries_and_is_controlled_from_anywhere(
        login, cleanup, monkeypatch) -> None:
    started = tunedeck(login, "a", "run", "demo", "--detach", *LONG)
    assert started.returncode == 0, started.stderr
    run = run_dir_of(started)
    cleanup.append(run)
    assert run.path.parent == login["home"] / "state" / "runs"  # the runs home, not ./runs of dir A
    assert not (login["a"] / "runs").exists()
    wait_for(lambda: logged(run, 2), 600, "the first steps")

    # From another directory, as a new login: listed, logs, attach's lookup.
    assert listed(login, run.name)["state"] == "running"
    logs = tunedeck(login, "b", "logs", run.name, "-n", "5")
    assert logs.returncode == 0 and "step " in logs.stdout
    monkeypatch.chdir(login["b"])
    monkeypatch.setenv("TUNEDECK_STATE_DIR", login["env"]["TUNEDECK_STATE_DIR"])
    from runner.run_ops import resolve  # what `tunedeck attach RUN` resolves with

    assert resolve(run.name)[0].path == run.path and resolve("latest")[0].path == run.path
    original = run.read_status()

    # kill -9 of the supervisor: the trainer trains on, and the run says so.
    os.kill(original["pid"], signal.SIGKILL)
    wait_for(lambda: not psutil.pid_exists(original["pid"]) or
             psutil.Process(original["pid"]).status() == psutil.STATUS_ZOMBIE, 30, "the supervisor to die")
    entry = listed(login, run.name)
    assert entry["state"] == "running" and entry["unsupervised"] and entry["label"] == "running (unsupervised)"
    assert "running (unsupervised)" in tunedeck(login, "b", "runs").stdout
    refused = tunedeck(login, "b", "resume", run.name)
    assert refused.returncode == 2 and "still running (unsupervised)" in refused.stderr
    assert len([p for p, trainer in _processes(run).items() if trainer]) == 1  # no second trainer

    # A damaged status.json hides nothing.
    run.status_file.write_text("{ this is not json")
    assert listed(login, run.name)["state"] == "running"

    # A status.json naming a stranger's process group: the stranger is never signalled.
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    try:
        forged = dict(original, pid=stranger.pid, pgid=stranger.pid,
                      pid_create_time=psutil.Process(stranger.pid).create_time())
        run.status_file.write_text(json.dumps(forged))
        step_before = max(e["step"] for e in read_events(run.events))
        stopped = tunedeck(login, "b", "stop", run.name, "--grace", "120")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert "not this run's" in stopped.stdout and "no process of the run is left" in stopped.stdout
        assert stranger.poll() is None  # untouched
    finally:
        stranger.kill()
        stranger.wait()
    assert _processes(run) == {}
    events = read_events(run.events)
    assert events[-1]["type"] == "run_stopped" and "SIGTERM" in events[-1]["reason"]  # graceful
    stop_step = events[-1]["step"]
    assert stop_step >= step_before and run.latest_checkpoint().name == f"checkpoint-{stop_step}"
    assert listed(login, run.name)["state"] == "stopped"

    # A tampered command.json is a record only: resume rebuilds the command from config.toml.
    marker = login["home"] / "pwned"
    run.command.write_text(json.dumps({"argv": [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"],
                                       "cwd": str(login["home"])}))
    resumed = tunedeck(login, "b", "resume", run.name, "--detach")
    assert resumed.returncode == 0, resumed.stderr
    wait_for(lambda: logged(run, stop_step), 600, "the resumed run's first steps")
    assert not marker.exists()
    second = [e for e in read_events(run.events) if e["type"] == "run_started"][-1]
    assert second["resumed_from"] == f"checkpoint-{stop_step}" and second["start_step"] == stop_step
    status = run.read_status()
    assert status["started"] == original["started"] and status["elapsed_before"] > 0 and status["segments"] == 2
    duration = listed(login, run.name)["duration_s"]
    assert duration >= status["elapsed_before"]
    final = tunedeck(login, "b", "stop", run.name, "--grace", "120")
    assert final.returncode == 0 and "escalated" not in final.stdout, final.stdout
    assert _processes(run) == {} and run.read_status()["state"] == "stopped"


def _processes(run: RunDir) -> dict[int, bool]:
    from runner.registry import run_processes

    return run_processes(run.path)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 3 MiB tmpfs: room for a run directory and its log, not for a checkpoint of the demo model."""
    with tmpfs(tmp_path / "small", "3m") as mount_point:
        yield mount_point


def test_a_disk_that_fills_during_training_is_disk_full_and_the_list_stays_readable(login, small_disk, cleanup) -> None:
    result = tunedeck(login, "a", "run", "demo", "--runs-dir", str(small_disk / "runs"), "--set", "training.max_steps=6",
                      "--set", "training.save_steps=3", "--set", "training.eval_strategy='no'",
                      "--set", "training.logging_steps=1")
    run = run_dir_of(result)
    cleanup.append(run)
    wait_for(lambda: run.read_status().get("state") in FINAL_STATES and run.read_status().get("exit_code") is not None,
             600, "the run to end")
    assert result.returncode == 1, result.stdout[-2000:]
    status = run.read_status()
    assert status["state"] == "failed" and status["reason"] == "disk_full", (status, run.log.read_text()[-3000:])
    assert "no space left on the device of" in status["message"] and "free" in status["message"]
    assert "internal error" not in result.stdout + result.stderr
    # Nothing half-made for listings or resume to misread: the cut-short checkpoint is gone.
    assert run.latest_checkpoint() is None and not any(run.checkpoints.iterdir())
    table = tunedeck(login, "b", "runs")
    assert table.returncode == 0 and run.name in table.stdout and "disk_full" in table.stdout
    assert f"{run.name} failed (disk_full): no space left on the device of" in table.stdout
