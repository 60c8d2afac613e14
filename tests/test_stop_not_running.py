"""`tunedeck stop` of a run with no process says so in its first words, signals nothing and exits as
README's exit-code table says: 0 when the run has ended, 1 when it runs on another host (still running)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from runner import cli, exits, run_ops
from runner.rundir import RunDir


def run_dir(root: Path, name: str, **status) -> Path:
    run = root / name
    run.mkdir()
    (run / "config.toml").write_text("")
    (run / "status.json").write_text(json.dumps(status))
    return run


@pytest.mark.parametrize(("status", "shown"), [
    ({"state": "finished"}, "finished"),
    ({"state": "failed", "reason": "oom"}, "failed"),
    ({"state": "stopped"}, "stopped"),
    # status.json says running, but the supervisor it names is gone: the run is lost, not running
    ({"state": "running", "supervisor_pid": 2**22 + 12345, "host": socket.gethostname()}, "lost"),
])
def test_stop_of_an_ended_run_says_so_first(tmp_path, capfd, status, shown):
    run = run_dir(tmp_path, "my-run", **status)
    before = (run / "status.json").read_text()
    assert cli.main(["stop", str(run)]) == exits.OK
    out, err = capfd.readouterr()
    assert out.splitlines() == [f"my-run is not running (state: {shown})"] and err == ""
    assert (run / "status.json").read_text() == before  # left alone
    outcome = run_ops.stop(RunDir(run))  # the TUI's path: the same words
    assert not outcome.ok and outcome.message == f"my-run is not running (state: {shown})"


def test_stop_of_a_run_on_another_host_says_where_first_and_fails(tmp_path, capfd):
    run = run_dir(tmp_path, "remote-run", state="running", host="gpu-node-7", supervisor_pid=4242)
    assert cli.main(["stop", str(run)]) == exits.FAILED  # it still runs: this stop did not stop it
    out, _ = capfd.readouterr()
    first = out.splitlines()[0]
    assert first.startswith("remote-run is not running on this machine: it runs on gpu-node-7")
    assert "stopping" not in out


def test_stop_of_an_ended_run_also_reports_a_group_it_will_not_signal(tmp_path, capfd):
    """A damaged status.json naming a process group is reported after the first words, never signalled."""
    run = run_dir(tmp_path, "old-run", state="finished", pgid=-5)
    assert cli.main(["stop", str(run)]) == exits.OK
    out, _ = capfd.readouterr()
    assert out.splitlines() == ["old-run is not running (state: finished); "
                                "status.json names an invalid process group -5"]
