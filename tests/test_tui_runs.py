"""The TUI over the runs service, driven by Pilot: the launch dialog shows exactly the directory that
is created (and honours $TUNEDECK_RUNS_DIR), resume in the monitor makes the CLI's checks, a finished
run offers no resume, and the runs screen keeps state, progress, loss and best eval in 80x24."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from textual.widgets import DataTable, Static

from fixtures import fake_runner
from fixtures.monitor_app import (MonitorTestApp, capture_notifications, history_run, three_runs_one_unsupervised,
                                  wait_for)
from runner import presets, run_ops
from runner.rundir import RunDir
from runner.stop import stop
from tui.app import TunedeckApp, state_from
from tui.screens.launch_dialog import LaunchDialog
from tui.screens.monitor import MonitorScreen
from tui.screens.runs import RunsScreen
from tui.services import NoProbe


async def test_the_launch_dialog_shows_exactly_the_directory_it_creates(tmp_path: Path, monkeypatch) -> None:
    fake_runner.use_fake_trainer(monkeypatch)  # the run is real (launcher, supervisor), the training fake
    monkeypatch.setenv("TUNEDECK_RUNS_DIR", str(tmp_path / "from-env"))
    app = TunedeckApp(state_from(presets.load("demo")), probe=lambda: NoProbe(reason="test"))
    run = None
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app.editor.ready, what="the editor")
            await pilot.press("f5")
            await wait_for(pilot, lambda: isinstance(app.screen, LaunchDialog), what="the launch dialog")
            dialog = app.screen
            shown = str(dialog.query_one("#launch-dir", Static).render()).splitlines()[1].split("  (")[0]
            assert Path(shown).parent == tmp_path / "from-env"
            await pilot.pause(1.2)  # the clock moves on between opening the dialog and pressing Enter
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), what="the monitor")
            run = app.screen.run
            assert str(run.path) == shown and (run.path / "config.toml").is_file()
            assert json.loads(run.command.read_text())["argv"] == dialog.plan.argv
            await wait_for(pilot, lambda: app.screen.loaded, what="the monitor to load")
            await wait_for(pilot, lambda: app.editor is not None and app.editor.is_mounted,
                           what="every screen mounted before the app exits")
    finally:
        if run is not None:
            stop(run, grace=10)


def stopped_run_with_checkpoint(root: Path) -> RunDir:
    run = history_run(root, "normal", steps=40)
    fake_runner.write_history  # noqa: B018 - the history above is a finished run; make it a stopped one
    run.update_status(state="stopped", reason="stop requested (SIGTERM)", message="stopped at step 40")
    config = presets.require(run.config).config
    checkpoint = run.checkpoints / "checkpoint-40"
    checkpoint.mkdir()
    (checkpoint / "trainer_state.json").write_text("{}")
    (checkpoint / "tunedeck.json").write_text(json.dumps({"config_digest": presets.config_digest(config)}))
    (checkpoint / run_ops.CHECKPOINT_CONFIG).write_text(presets.dumps(config, with_help=False))
    events = run.events.read_text().splitlines()
    run.events.write_text("\n".join(e for e in events if '"run_finished"' not in e) + "\n")
    return run


async def test_resume_in_the_monitor_refuses_a_changed_config_like_the_cli(tmp_path: Path) -> None:
    run = stopped_run_with_checkpoint(tmp_path / "runs")
    text = run.config.read_text()
    presets.save(presets.require(run.config, ["training.logging_steps=7"]).config, run.config)  # edited by hand
    assert run.config.read_text() != text
    app = MonitorTestApp(tmp_path / "runs", attach=run)
    notes = capture_notifications(app)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.loaded, what="monitor")
        screen = app.screen
        assert screen.check_action("resume", ()) is True
        await pilot.press("r")
        await wait_for(pilot, lambda: any("changed since checkpoint-40" in n for n in notes), what="the refusal")
    status = run.read_status()
    assert status["state"] == "stopped" and not status.get("pid")  # nothing was started
    assert not run_ops.resume(run).ok  # and the CLI's function says the same


async def test_a_finished_run_offers_no_resume(tmp_path: Path) -> None:
    run = history_run(tmp_path / "runs", "normal", steps=40)
    checkpoint = run.checkpoints / "checkpoint-40"
    checkpoint.mkdir()
    (checkpoint / "trainer_state.json").write_text("{}")
    app = MonitorTestApp(tmp_path / "runs", attach=run)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.loaded
                       and app.screen.state == "finished", what="monitor of the finished run")
        assert app.screen.check_action("resume", ()) is False
        assert "Resume" not in " ".join(str(w.render()) for w in app.screen.query("FooterKey"))


async def test_runs_screen_at_80x24_keeps_state_progress_loss_and_best_eval_and_names_the_failure(tmp_path) -> None:
    root = tmp_path / "runs"
    failed, orphan, lock = three_runs_one_unsupervised(root)  # the orphan's supervisor was killed
    app = MonitorTestApp(root, open_runs=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.rows) == 3,
                       what="runs listed")
        assert str(app.screen.rows[orphan.name].cells[1]) == "running (unsupervised)"
        table = app.screen.query_one(DataTable)
        widths = {str(key.value if hasattr(key, "value") else key): col.get_render_width(table)
                  for key, col in table.columns.items()}
        needed = sum(widths[c] for c in ("run", "state", "progress", "loss", "best eval"))
        assert needed <= table.scrollable_content_region.width, widths
        table.move_cursor(row=list(app.screen.rows).index(failed.name))
        await wait_for(pilot, lambda: "failed (oom)" in str(app.screen.query_one("#runs-hint", Static).render()),
                       what="the failed run's detail")
        assert "CUDA out of memory" in str(app.screen.query_one("#runs-hint", Static).render())
    os.close(lock)


async def test_runs_screen_at_80x24_shows_how_long_each_run_took(tmp_path) -> None:
    """With the usual states (finished, failed, stopped) the duration fits beside the name, state,
    progress, loss and best eval: how long a run took matters more than when it started."""
    root = tmp_path / "runs"
    history_run(root, "normal", steps=120, name="demo")
    failed = history_run(root, "oom", steps=100, name="qlora-8b-my-long-preset")
    failed.update_status(reason="oom", message="CUDA out of memory")
    app = MonitorTestApp(root, open_runs=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.rows) == 2,
                       what="runs listed")
        table = app.screen.query_one(DataTable)
        widths = {str(key.value if hasattr(key, "value") else key): col.get_render_width(table)
                  for key, col in table.columns.items()}
        first = ("run", "state", "progress", "loss", "best eval", "duration")
        assert list(widths)[:len(first)] == list(first)
        assert sum(widths[c] for c in first) <= table.scrollable_content_region.width, widths
        for row in app.screen.rows.values():
            assert re.fullmatch(r"(\d+:)?\d+:\d\d|-", str(row.cells[5])), row.cells
