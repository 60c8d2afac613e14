"""Where runs live and the index of every run (runner.runs_home), as a new login would meet them:
another working directory, no TUNEDECK_RUNS_DIR, runs made in several places."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runner import launch, presets, runs_home
from runner.registry import listing, list_runs, resolve
from runner.rundir import RunDir
from runner.schema import Config
from tests.conftest import ROOT, python_env


def _run_at(path: Path, **status) -> RunDir:
    run = RunDir(path)
    run.checkpoints.mkdir(parents=True)
    presets.save(Config(), run.config)
    run.update_status(**status)
    return run


def test_runs_live_in_the_state_dir_unless_overridden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(runs_home.RUNS_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "state" / "runs"
    assert runs_home.runs_home() == home
    assert runs_home.runs_dir() == home  # not ./runs
    config = Config()
    assert config.training.output_dir == ""
    assert runs_home.runs_dir(config=config) == home
    own = config.model_copy(update={"training": config.training.model_copy(update={"output_dir": "mine"})})
    assert runs_home.runs_dir(config=own) == tmp_path / "mine"  # relative: from the current directory, made absolute
    monkeypatch.setenv(runs_home.RUNS_DIR_ENV, str(tmp_path / "env"))
    assert runs_home.runs_dir(config=own) == tmp_path / "env"
    assert runs_home.runs_dir("flag", config=own) == tmp_path / "flag"


def test_a_run_made_anywhere_is_found_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(runs_home.RUNS_DIR_ENV, raising=False)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    monkeypatch.chdir(a)
    config = presets.require("demo").config
    default = launch.prepare(config, preset_name="demo", cuda=False)
    elsewhere = launch.prepare(config, preset_name="demo", runs_dir=tmp_path / "scratch", cuda=False)
    assert default.path.parent == runs_home.runs_home()
    assert not (a / "runs").exists()
    monkeypatch.chdir(b)
    names = {r.run.path for r in list_runs()}
    assert {default.path, elsewhere.path} <= names
    assert resolve(elsewhere.name).path == elsewhere.path
    assert resolve("latest").path in (default.path, elsewhere.path)
    # The CLI in a fresh process, from yet another directory, without TUNEDECK_RUNS_DIR.
    env = python_env()
    env.pop(runs_home.RUNS_DIR_ENV, None)
    out = subprocess.run([sys.executable, "-m", "runner.cli", "runs", "--json"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True)
    assert {default.name, elsewhere.name} <= {r["name"] for r in json.loads(out.stdout)}


def test_a_vanished_run_is_reported_once_then_dropped(tmp_path: Path) -> None:
    import shutil

    run = _run_at(tmp_path / "away" / "demo-1", state="finished", started=1.0)
    runs_home.record(run.path)
    assert [r.run.path for r in list_runs()] == [run.path]
    shutil.rmtree(run.path)
    env = python_env()
    first = subprocess.run([sys.executable, "-m", "runner.cli", "runs"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, check=True)
    assert f"removed from the list: {run.path}" in first.stdout
    second = subprocess.run([sys.executable, "-m", "runner.cli", "runs"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, check=True)
    assert "removed" not in second.stdout and listing().removed == []


def test_a_half_made_directory_is_neither_listed_nor_dropped(tmp_path: Path) -> None:
    making = tmp_path / "making"
    making.mkdir()
    runs_home.record(making)  # e.g. a cluster job that recorded its directory before writing config.toml
    found = runs_home.scan()
    assert making not in found.present and making not in found.removed
    assert making in runs_home.indexed()


def test_moved_runs_are_found_again_by_path_or_add(tmp_path: Path) -> None:
    run = _run_at(tmp_path / "moved" / "demo-2", state="stopped", started=2.0)
    assert run.path not in [r.run.path for r in list_runs()]
    out = subprocess.run([sys.executable, "-m", "runner.cli", "runs", "--add", str(run.path)], cwd=ROOT,
                         env=python_env(), capture_output=True, text=True)
    assert out.returncode == 0 and f"recorded {run.path}" in out.stdout
    assert resolve("demo-2").path == run.path
    bad = subprocess.run([sys.executable, "-m", "runner.cli", "runs", "--add", str(tmp_path)], cwd=ROOT,
                         env=python_env(), capture_output=True, text=True)
    assert bad.returncode == 2 and "not a run directory" in bad.stderr


WRITER = """
import sys
from runner import runs_home
base, who = sys.argv[1], sys.argv[2]
for i in range(40):
    runs_home.record(f"{base}/{who}-{i}")
    runs_home.record(f"{base}/shared-{i}")  # every writer records these too, at the same time
"""


def test_concurrent_writers_lose_no_entry_and_leave_no_torn_one(tmp_path: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "r"), f"w{n}"], env=python_env())
             for n in range(6)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    paths = {str(p) for p in runs_home.indexed()}
    expected = {str(tmp_path / "r" / f"w{n}-{i}") for n in range(6) for i in range(40)}
    expected |= {str(tmp_path / "r" / f"shared-{i}") for i in range(40)}
    assert paths == expected
    files = list(runs_home.index_dir().iterdir())
    assert len(files) == len(expected)  # one file per run, no temp files left over
    assert all(json.loads(f.read_text())["path"] in expected for f in files)
