"""The run watcher when the run directory misbehaves, and its messages: a damaged status.json, an
output.log replaced by a directory, an events.jsonl that cannot be read at first, damaged event lines.
The monitor shows what it cannot read (a line and a notification), keeps watching, and recovers once
the file is fixed. Plus: `Changed` messages merge (can_replace), and a failing worker is shown by name.
Real app, real run directories written as the runner writes them, Pilot."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Static

from fixtures.monitor_app import MonitorTestApp, capture_notifications, history_run, wait_for
from runner import presets
from runner.events import EventWriter
from runner.rundir import RunDir, new_run_dir
from tui.run_watch import RunWatcher
from tui.screens.monitor import MonitorScreen
from tui.widgets.log_view import LogView


def running_run(root) -> RunDir:
    """A run directory that says "running", with a started event and one log line; the test writes the rest."""
    run = new_run_dir(root, "demo")
    presets.save(presets.require("demo").config, run.config)
    run.update_status(state="running", preset="demo", started=time.time())
    run.log.write_text("[tunedeck] launching: fake\n")
    EventWriter(run.events).emit("run_started", 0, total_steps=50)
    return run


def log_step(run: RunDir, step: int) -> None:
    with open(run.log, "a", encoding="utf-8") as log:
        log.write(f"step {step} loss 1.0\n")
    EventWriter(run.events).emit("log", step, loss=1.0)


def error_line(screen: MonitorScreen) -> str:
    box = screen.query_one("#watch-errors", Static)
    return str(box.render()) if box.display else ""


async def monitor_loaded(pilot) -> MonitorScreen:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.loaded, what="monitor loaded")
    return app.screen


@asynccontextmanager
async def monitoring(root: Path, run: RunDir, **options) -> AsyncIterator[tuple[Pilot, MonitorScreen, list[str]]]:
    """The app attached to `run` at 80x24, its notifications captured from the start: (pilot, the loaded
    monitor, notifications)."""
    app = MonitorTestApp(root, attach=run, **options)
    notes = capture_notifications(app)
    async with app.run_test(size=(80, 24)) as pilot:
        yield pilot, await monitor_loaded(pilot), notes


async def test_a_damaged_status_file_is_shown_and_watching_goes_on_until_it_is_fixed(tmp_path) -> None:
    run = running_run(tmp_path / "runs")
    async with monitoring(tmp_path / "runs", run) as (pilot, screen, notes):
        run.status_file.write_text('{"state": "running", "pid"')  # damaged (the runner writes it atomically)
        await wait_for(pilot, lambda: "status.json" in error_line(screen), what="the error line")
        assert "not valid JSON" in error_line(screen)
        assert any("Cannot read" in n and "status.json" in n for n in notes)
        log_step(run, 1)  # the log and the events are still followed meanwhile
        await wait_for(pilot, lambda: screen.model.step == 1, what="a step while status.json is damaged")
        assert screen.query_one(LogView).visible_text()[-1] == "step 1 loss 1.0"
        assert pilot.app.is_running and pilot.app.screen is screen

        run.status_file.write_text(json.dumps(["not", "an", "object"]))
        await wait_for(pilot, lambda: "JSON list" in error_line(screen), what="the new error")

        run.update_status(state="running", preset="demo-fixed")  # fixed: a whole status again
        await wait_for(pilot, lambda: error_line(screen) == "", what="the error line gone")
        await wait_for(pilot, lambda: screen.status.get("preset") == "demo-fixed", what="the fixed status read")
        assert any("status.json reads again" in n for n in notes)


async def test_a_log_replaced_by_a_directory_is_reported_then_followed_again(tmp_path) -> None:
    run = running_run(tmp_path / "runs")
    async with monitoring(tmp_path / "runs", run) as (pilot, screen, notes):
        log = screen.query_one(LogView)
        text = run.log.read_text()
        run.log.unlink()
        run.log.mkdir()  # something that is not a file where the log should be
        await wait_for(pilot, lambda: "output.log" in error_line(screen), what="the error line")
        assert "IsADirectoryError" in error_line(screen)
        EventWriter(run.events).emit("log", 1, loss=1.0)  # the events are still read: many ticks later ...
        await wait_for(pilot, lambda: screen.model.step == 1, what="a step while the log is broken")
        assert sum("output.log: IsADirectoryError" in n for n in notes) == 1, notes  # ... still told once
        assert not any("reads again" in n for n in notes)
        run.log.rmdir()
        run.log.write_text(text + "back again\n")
        await wait_for(pilot, lambda: error_line(screen) == "", what="recovered")
        await wait_for(pilot, lambda: log.visible_text()[-1:] == ["back again"], what="the log followed again")


async def test_events_unreadable_while_the_history_loads_are_folded_once_readable(tmp_path) -> None:
    run = history_run(tmp_path / "runs", "normal", steps=30)
    history = run.events.read_text()
    run.events.unlink()
    run.events.mkdir()
    async with monitoring(tmp_path / "runs", run) as (pilot, screen, _):  # the history fold did not stop the watcher
        await wait_for(pilot, lambda: "events.jsonl" in error_line(screen), what="the error line")
        run.events.rmdir()
        run.events.write_text(history)
        await wait_for(pilot, lambda: screen.model.step == 30 and error_line(screen) == "", what="the history")
        assert len(screen.model.train) == 30


async def test_damaged_event_lines_are_skipped_and_later_steps_still_arrive(tmp_path) -> None:
    run = running_run(tmp_path / "runs")
    async with monitoring(tmp_path / "runs", run) as (pilot, screen, _):
        log_step(run, 1)
        await wait_for(pilot, lambda: screen.model.step == 1, what="step 1")
        with open(run.events, "a", encoding="utf-8") as events:
            events.write('{"type": "log", "step": 2, "loss": \n')  # cut short
            events.write('{"type": "run_started", "step": 0, "total_steps": "lots", "start_step": "x"}\n')
            events.write("\x00\x00 not json\n")
        log_step(run, 3)
        await wait_for(pilot, lambda: screen.model.step == 3, what="step 3 after the damaged lines")
        assert pilot.app.is_running and error_line(screen) == ""


def test_changed_messages_merge_and_failures_do_not() -> None:
    changed = RunWatcher.Changed()
    assert changed.can_replace(RunWatcher.Changed())
    assert not changed.can_replace(RunWatcher.Failed("status.json", "damaged"))
    assert not RunWatcher.Failed("a", "x").can_replace(RunWatcher.Failed("b", "y"))


async def test_many_changes_posted_at_once_are_handled_as_one(tmp_path) -> None:
    run = history_run(tmp_path / "runs", "normal", steps=20)  # finished: the watcher itself posts nothing new
    async with monitoring(tmp_path / "runs", run) as (pilot, screen, _):
        await pilot.pause(0.2)
        watcher = screen.watcher
        takes: list[int] = []
        take = watcher.take
        watcher.take = lambda: takes.append(1) or take()
        for _ in range(200):
            screen.post_message(RunWatcher.Changed())
        for source in ("output.log", "events.jsonl", "status.json"):  # different news: each one shown
            screen.post_message(RunWatcher.Failed(source, "damaged"))
        await wait_for(pilot, lambda: len(screen.watch_errors) == 3, what="every failure handled")
        await pilot.pause(0.2)
        assert 1 <= len(takes) <= 3, len(takes)  # 200 queued in a row: merged, not 200 takes


async def test_a_failing_worker_is_shown_by_name_and_the_monitor_keeps_running(tmp_path) -> None:
    def broken_machine():
        raise RuntimeError("sensor exploded")

    run = history_run(tmp_path / "runs", "normal", steps=20)
    async with monitoring(tmp_path / "runs", run, machine=broken_machine) as (pilot, screen, notes):
        await wait_for(pilot, lambda: any("read GPUs and CPU failed" in n for n in notes), what="the failure")
        assert any("RuntimeError: sensor exploded" in n for n in notes)
        await pilot.press("x")  # the screen still answers keys
        assert pilot.app.is_running and pilot.app.screen is screen
        await wait_for(pilot, lambda: screen.model.step == 20, what="the history")


async def test_resume_is_offered_only_once_the_stopped_runs_processes_have_exited(tmp_path) -> None:
    """The trainer records its stop before it exits: until its lock is free the monitor says
    "stopped" (the trainer's word) but offers no resume, which the runner would refuse."""
    import os

    from runner.liveness import hold
    from test_tui_runs import stopped_run_with_checkpoint

    run = stopped_run_with_checkpoint(tmp_path / "runs")
    EventWriter(run.events).emit("run_stopped", 40, reason="stop requested (SIGTERM)")
    lock = hold(run, "trainer")  # as a trainer that has written its last event and is exiting
    try:
        async with monitoring(tmp_path / "runs", run) as (pilot, screen, _):
            await wait_for(pilot, lambda: screen.state == "stopped", what="the trainer's word")
            assert screen.process_state in ("running", "stopping")
            assert screen.check_action("resume", ()) is False
            os.close(lock)
            lock = None  # the trainer exited
            await wait_for(pilot, lambda: screen.check_action("resume", ()) is True, what="resume offered")
            assert screen.process_state == "stopped"
    finally:
        if lock is not None:
            os.close(lock)
