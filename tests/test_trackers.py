"""`training.report_to`: a missing tracker package fails fast with an install hint; tensorboard logs land in the run dir."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, python_env
from runner import presets
from runner.rundir import RunDir
from runner.trackers import tracker_problem

SHORT = ["--set", "training.max_steps=4", "--set", "training.logging_steps=1", "--set", "training.eval_strategy=\"no\"",
         "--set", "data.eval_split=0.0", "--set", "training.save_strategy=\"no\"", "--set", "generation.prompts=[]"]


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.fixture
def env(tmp_path: Path, shared_cache_dir: Path) -> dict[str, str]:
    e = python_env()
    e.update(TUNEDECK_CACHE_DIR=str(shared_cache_dir), TUNEDECK_RUNS_DIR=str(tmp_path / "runs"),
             TUNEDECK_CONFIG_DIR=str(tmp_path / "config"), TUNEDECK_STATE_DIR=str(tmp_path / "state"),
             HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return e


@pytest.mark.parametrize("tracker", ["wandb", "tensorboard"])
def test_run_with_a_missing_tracker_fails_before_starting(tracker: str, env: dict[str, str], tmp_path: Path) -> None:
    if installed(tracker):
        pytest.skip(f"{tracker} is installed here")
    done = subprocess.run([sys.executable, "-m", "runner.cli", "run", "demo", "--set",
                           f"training.report_to=\"{tracker}\""], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert f"training.report_to: report_to = '{tracker}' needs the {tracker} package" in done.stderr
    assert f"pip install 'tunedeck[{tracker}]'" in done.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing was created


def test_no_tracker_needs_nothing() -> None:
    assert tracker_problem("none") is None
    if installed("tensorboard"):
        assert tracker_problem("tensorboard") is None


@pytest.mark.slow
def test_trainer_refuses_a_missing_tracker_as_a_missing_dependency(tmp_path: Path, env: dict[str, str]) -> None:
    """Also checked inside the trainer, for runs prepared elsewhere (an sbatch job, a copied run dir)."""
    if installed("wandb"):
        pytest.skip("wandb is installed here")
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    config = presets.require("demo", ["training.report_to=\"wandb\""]).config
    presets.save(config, run.config)
    done = subprocess.run([sys.executable, "-m", "runner.train", str(run.path)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 1
    status = json.loads(run.status_file.read_text())
    assert status["state"] == "failed" and status["reason"] == "missing_dependency"
    assert "pip install 'tunedeck[wandb]'" in status["message"]
    assert not run.final.exists()


@pytest.mark.slow
def test_tensorboard_logs_go_in_the_run_directory(env: dict[str, str], tmp_path: Path) -> None:
    if not installed("tensorboard"):
        pytest.skip("tensorboard is not installed (pip install 'tunedeck[tensorboard]')")
    done = subprocess.run([sys.executable, "-m", "runner.cli", "run", "demo", "--set",
                           "training.report_to=\"tensorboard\"", *SHORT], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("run directory: "))
    run = RunDir(Path(line.split(": ", 1)[1]))
    assert run.read_status()["state"] == "finished"
    event_files = list((run.path / "tensorboard").rglob("events.out.tfevents.*"))
    assert event_files and event_files[0].stat().st_size > 0

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(event_files[0].parent))
    accumulator.Reload()
    losses = accumulator.Scalars("train/loss")
    assert [s.step for s in losses] == [1, 2, 3, 4]
