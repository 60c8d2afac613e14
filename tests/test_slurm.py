"""`tunedeck run --slurm` on a real two-node SLURM cluster started on this machine (tests/slurm_cluster.py):
the demo preset trains across both nodes on CPU (accelerate multi-machine over gloo), a run is stopped
gracefully through SLURM and resumed, and bad submissions fail with one line and leave no run behind.

Where the SLURM packages are missing the tests skip, except in CI (CI=true), where .ci/run installs
them: there a cluster that does not start fails loudly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import python_env
from fixtures.processes import wait_until
from slurm_cluster import ClusterUnavailable, SlurmCluster

DEADLINE_S = 900.0  # 2 shared cores: generous, only ever waited on conditions


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    try:
        started = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    except ClusterUnavailable as exc:
        if os.environ.get("CI") == "true" or os.environ.get("TUNEDECK_REQUIRE_SLURM"):
            pytest.fail(f"the SLURM test cluster did not start in CI: {exc}")
        pytest.skip(f"no SLURM test cluster here: {exc}")
    yield started
    started.stop()


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A working directory elsewhere, as on a login node: runs go under ./runs, shared with the 'nodes'."""
    path = tmp_path / "login"
    path.mkdir()
    return path


def tunedeck(cluster: SlurmCluster | None, *args: str, cwd: Path, env: dict[str, str] | None = None,
             timeout: float = 300) -> subprocess.CompletedProcess:
    full = python_env()
    if cluster is not None:
        full["SLURM_CONF"] = str(cluster.conf)
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=full, timeout=timeout)


def runs_json(cluster: SlurmCluster, work: Path) -> list[dict]:
    done = tunedeck(cluster, "runs", "--json", cwd=work)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def wait_for(condition, what: str, timeout: float = DEADLINE_S, poll: float = 1.0):
    return wait_until(condition, timeout, what, every=poll)


def events(run_dir: Path) -> list[dict]:
    path = run_dir / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def submit(cluster: SlurmCluster, work: Path, *extra: str) -> tuple[Path, str]:
    done = tunedeck(cluster, "run", "demo", "--slurm", "--nodes", "2", "--time", "00:30:00", *extra, cwd=work)
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = Path(next(line.split(": ", 1)[1] for line in done.stdout.splitlines()
                        if line.startswith("run directory: ")))
    job_id = json.loads((run_dir / "status.json").read_text())["slurm"]["job_id"]
    assert f"submitted SLURM job {job_id}" in done.stdout
    return run_dir, job_id


def state_of(cluster: SlurmCluster, work: Path, run_dir: Path) -> str:
    return next(r["state"] for r in runs_json(cluster, work) if r["path"] == str(run_dir))


def fail_context(cluster: SlurmCluster, run_dir: Path) -> str:
    log = run_dir / "output.log"
    return (log.read_text()[-3000:] if log.exists() else "(no output.log)") + "\n" + cluster.logs_tail()


def test_demo_trains_across_two_nodes(cluster: SlurmCluster, work: Path) -> None:
    run_dir, job_id = submit(cluster, work, "--set", "training.max_steps=30")
    assert run_dir.parent == work / "runs"  # under the working directory: the shared filesystem
    from runner.runs_home import indexed

    assert run_dir in indexed()  # recorded, so `tunedeck runs` finds it from any directory and login
    script = (run_dir / "job.sbatch").read_text()
    assert "#SBATCH --nodes=2" in script and "--gres" not in script  # the demo targets the CPU

    wait_for(lambda: state_of(cluster, work, run_dir) in ("finished", "failed", "lost"), "the run to end")
    assert state_of(cluster, work, run_dir) == "finished", fail_context(cluster, run_dir)
    got = events(run_dir)
    ranks = {e["rank"]: e for e in got if e["type"] == "rank_ready"}
    assert set(ranks) == {0, 1}, got[:5]
    assert {ranks[0]["node"], ranks[1]["node"]} == {"n1", "n2"}  # one rank on each node
    assert all(e["world_size"] == 2 for e in ranks.values())
    started = next(e for e in got if e["type"] == "run_started")
    assert started["world_size"] == 2
    losses = [e["loss"] for e in got if e["type"] == "log"]
    assert len(losses) >= 3 and losses[-1] < losses[0], losses
    assert got[-1]["type"] == "run_finished" and (run_dir / "final").is_dir()

    listed = tunedeck(cluster, "runs", cwd=work.parent)  # from elsewhere: found through the runs index
    assert f"SLURM job {job_id}:" in listed.stdout and "finished" in listed.stdout
    logs = tunedeck(cluster, "logs", run_dir.name, cwd=work)
    assert logs.returncode == 0 and f"SLURM job {job_id}" in logs.stderr
    assert "finished at step 30" in logs.stdout
    listed_events = tunedeck(cluster, "logs", run_dir.name, "--events", cwd=work)
    assert listed_events.stdout.count('"type": "rank_ready"') == 2
    wait_for(lambda: job_id not in cluster.queue(), "the job to leave the queue")
    assert tunedeck(cluster, "runs", cwd=work).stdout.count(f"SLURM job {job_id}: COMPLETED") == 1


def test_stop_through_slurm_writes_a_checkpoint_and_resume_continues(cluster: SlurmCluster, work: Path) -> None:
    run_dir, job_id = submit(cluster, work, "--set", "training.max_steps=400", "--set", "training.save_steps=1000")
    wait_for(lambda: any(e["type"] == "log" for e in events(run_dir)), "training to log a step")
    assert job_id in cluster.queue()

    stopped = tunedeck(cluster, "stop", run_dir.name, cwd=work)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr + fail_context(cluster, run_dir)
    assert job_id not in cluster.queue()  # gone from squeue
    checkpoint = sorted((run_dir / "checkpoints").glob("checkpoint-*"))
    assert checkpoint, fail_context(cluster, run_dir)  # written on the stop signal (save_steps is out of reach)
    assert checkpoint[-1].name in stopped.stdout
    assert state_of(cluster, work, run_dir) == "stopped"
    last = events(run_dir)[-1]
    assert last["type"] == "run_stopped" and "SIGTERM" in last["reason"]
    stopped_at = last["step"]

    resumed = tunedeck(cluster, "resume", run_dir.name, cwd=work)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    new_job = json.loads((run_dir / "status.json").read_text())["slurm"]
    assert new_job["job_id"] != job_id and new_job["history"] == [job_id]
    wait_for(lambda: any(e["type"] == "run_started" and e.get("resumed_from") for e in events(run_dir)),
             "the resumed job to start")
    start = next(e for e in events(run_dir) if e["type"] == "run_started" and e.get("resumed_from"))
    assert start["resumed_from"] == checkpoint[-1].name and start["start_step"] == stopped_at
    wait_for(lambda: any(e["type"] == "log" and e["step"] > stopped_at for e in events(run_dir)),
             "the resumed run to train past the checkpoint")
    # And stop it again, so the module's cluster is free for the other tests.
    again = tunedeck(cluster, "stop", run_dir.name, cwd=work)
    assert again.returncode == 0, again.stdout + again.stderr + fail_context(cluster, run_dir)
    assert new_job["job_id"] not in cluster.queue()
    assert events(run_dir)[-1]["step"] > stopped_at


def _one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: not submitted: ")
    return lines[0]


def _no_run_left(work: Path) -> None:
    from runner.runs_home import indexed

    runs = work / "runs"
    assert not runs.exists() or not any(runs.iterdir()), list(runs.iterdir())
    assert indexed() == []  # nor an entry in the runs index


def test_sbatch_missing_is_one_line_and_leaves_nothing(work: Path) -> None:
    env = {"PATH": str(Path(sys.executable).parent)}  # python, but no SLURM tools
    done = tunedeck(None, "run", "demo", "--slurm", cwd=work, env=env)
    assert "sbatch not found" in _one_error_line(done)
    _no_run_left(work)


def test_unreachable_slurm_is_one_line_and_leaves_nothing(cluster: SlurmCluster, work: Path, tmp_path: Path) -> None:
    dead = tmp_path / "dead.conf"
    lines = []
    for line in cluster.conf.read_text().splitlines():
        if line.startswith("SlurmctldPort="):
            line = "SlurmctldPort=1"  # nothing listens there
        elif line.startswith("MessageTimeout="):
            line = "MessageTimeout=3"
        lines.append(line)
    dead.write_text("\n".join(lines) + "\n")
    done = tunedeck(None, "run", "demo", "--slurm", cwd=work, env={"SLURM_CONF": str(dead)})
    assert "SLURM is not reachable" in _one_error_line(done)
    _no_run_left(work)


@pytest.mark.parametrize(("args", "cause"), [
    (("demo", "--partition", "no-such-partition"), "the partition does not exist"),
    (("demo", "--nodes", "3"), "rejected for its resources"),  # the cluster has two nodes
    (("qlora-8b",), "rejected for its resources"),  # GPUs, which this cluster does not have
])
def test_rejected_submissions_are_one_line_and_leave_nothing(cluster: SlurmCluster, work: Path, args: tuple,
                                                             cause: str) -> None:
    done = tunedeck(cluster, "run", *args, "--slurm", cwd=work)
    assert cause in _one_error_line(done)
    _no_run_left(work)
    assert cluster.queue() == []


async def test_the_launch_dialog_submits_exactly_the_job_it_shows(cluster: SlurmCluster, work: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from textual.widgets import Input

    from runner import presets
    from tui.app import TunedeckApp, state_from
    from tui.screens.launch_dialog import LaunchDialog
    from tui.services import NoProbe

    from tests.conftest import settle_editor

    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    app = TunedeckApp(state_from(presets.load("demo")), probe=lambda: NoProbe(reason="no GPU", driver=""),
                      runs_dir=str(work / "runs"))
    async with app.run_test(size=(120, 48)) as pilot:
        await settle_editor(pilot)
        from fixtures.monitor_app import wait_for as until
        from tui.screens.monitor import MonitorScreen

        await pilot.press("f5")
        await until(pilot, lambda: isinstance(app.screen, LaunchDialog) and app.screen.is_mounted, what="the dialog")
        dialog = app.screen
        await pilot.click("#where-slurm")
        dialog.query_one("#slurm-nodes", Input).value = "2"
        await until(pilot, lambda: dialog.slurm_plan is not None and "#SBATCH --nodes=2" in dialog.slurm_plan[2],
                    what="the job script for 2 nodes")
        run_dir, _, shown_script = dialog.slurm_plan
        await pilot.press("enter")
        # Submitted: the monitor of the run is open and shows the scheduler's state.
        await until(pilot, lambda: isinstance(app.screen, MonitorScreen), timeout=DEADLINE_S, what="the monitor")
        await until(pilot, lambda: "SLURM job" in app.screen.sub_title, timeout=DEADLINE_S, what="the SLURM state")
        await app.workers.wait_for_complete()
    assert (run_dir / "job.sbatch").read_text() == shown_script
    job_id = json.loads((run_dir / "status.json").read_text())["slurm"]["job_id"]
    stopped = tunedeck(cluster, "stop", run_dir.name, cwd=work)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr + fail_context(cluster, run_dir)
    assert job_id not in cluster.queue()


def test_values_that_could_end_an_sbatch_line_are_refused(work: Path) -> None:
    for flag, value in (("--partition", "gpu\necho injected"), ("--account", "a b"), ("--time", "1h")):
        done = tunedeck(None, "run", "demo", "--slurm", flag, value, cwd=work)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert flag in done.stderr and "injected" not in done.stdout
    _no_run_left(work)


def test_stop_signals_only_the_job_that_runs_this_runs_script(cluster: SlurmCluster, work: Path) -> None:
    import shutil

    run_dir, job_id = submit(cluster, work, "--set", "training.max_steps=400")
    forged = work / "runs" / "forged"
    forged.mkdir()
    for name in ("config.toml", "status.json"):  # a copied run directory names the other run's job
        shutil.copy(run_dir / name, forged / name)
    refused = tunedeck(cluster, "stop", str(forged), cwd=work)
    assert refused.returncode == 1 and "not signalled" in refused.stderr, refused.stdout + refused.stderr
    assert job_id in cluster.queue()
    stopped = tunedeck(cluster, "stop", run_dir.name, cwd=work)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr + fail_context(cluster, run_dir)
    assert job_id not in cluster.queue()
