"""The monitor on live runs started by the real launcher (runner.launch.start) with the fake trainer
(tests/fixtures/fake_runner.py): live updates, unfollow while lines keep coming, stop and resume
through the UI, re-attach after the app exits. Plus one real tiny CPU training run (slow)."""

from __future__ import annotations

import pytest

from fixtures import fake_runner
from fixtures.monitor_app import MonitorTestApp, wait_for
from runner import launch
from runner.events import read_events
from runner.registry import effective_state
from tui.screens.monitor import MonitorScreen
from tui.widgets.log_view import LogView


@pytest.fixture
def live_run(tmp_path, monkeypatch):
    """A fake run of 100 steps, ~30 lines/step, started detached; stopped at teardown if still going."""
    fake_runner.use_fake_trainer(monkeypatch)
    run = fake_runner.prepare(tmp_path / "runs", steps=100, step_interval=0.1, lines_per_step=30)
    launch.start(run)
    yield run
    if effective_state(run) in ("starting", "running", "stopping"):
        from runner.stop import stop

        stop(run, grace=5)


async def monitor_at_step(pilot, step: int) -> MonitorScreen:
    """Wait for the monitor of the live run to show `step` steps; the monitor."""
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, MonitorScreen) and pilot.app.screen.model.step >= step,
                   what=f"the first {step} steps")
    return pilot.app.screen


async def test_live_run_updates_and_unfollowing_keeps_the_view_still(live_run) -> None:
    app = MonitorTestApp(live_run.path.parent, attach=live_run)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await monitor_at_step(pilot, 5)
        log = screen.query_one(LogView)
        await wait_for(pilot, lambda: log.total > 200 and log.following, what="log lines")
        await wait_for(pilot, lambda: log.scroll_offset.y == log.max_scroll_y, what="view at the end")
        await pilot.press("pageup")
        await wait_for(pilot, lambda: not log.following, what="pageup unfollows")
        top, first_line = log.scroll_offset.y, log.visible_text()[0]
        total = log.total
        await wait_for(pilot, lambda: log.total > total + 60, what="more lines")
        assert log.scroll_offset.y == top and log.visible_text()[0] == first_line  # did not jump to the end
        await pilot.press("end")
        await wait_for(pilot, lambda: log.scroll_offset.y == log.max_scroll_y, what="following again")
        step = screen.model.step
        await wait_for(pilot, lambda: screen.model.step > step and screen._drawn_version == screen.model.version,
                       what="plots redrawn with new steps")
        assert "train" in screen.query_one("#loss-plot").plt.build()


async def test_stop_and_resume_through_the_ui(live_run) -> None:
    app = MonitorTestApp(live_run.path.parent, attach=live_run)
    from tui.screens.confirm import ConfirmScreen

    async with app.run_test(size=(120, 40)) as pilot:
        screen = await monitor_at_step(pilot, 3)
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the stop question")
        await pilot.press("y")  # confirm
        await wait_for(pilot, lambda: screen.state == "stopped", what="stopped")
        stopped_at = screen.model.step
        assert live_run.latest_checkpoint() is not None  # graceful: a checkpoint was saved
        await wait_for(pilot, lambda: screen.check_action("resume", ()) is True, what="resume allowed")
        await pilot.press("r")
        await wait_for(pilot, lambda: screen.model.launches == 2, what="resumed launch")
        await wait_for(pilot, lambda: screen.state == "finished", timeout=60, what="finished")
        assert screen.model.step == 100
        assert screen.model.started["resumed_from"] == f"checkpoint-{stopped_at}"
        steps = list(screen.model.train["step"])
        assert steps == sorted(steps) and len(steps) == 100  # one curve, no replayed duplicates


async def test_reattach_after_the_app_exits_shows_the_whole_curve(live_run) -> None:
    app = MonitorTestApp(live_run.path.parent, attach=live_run)
    async with app.run_test(size=(100, 30)) as pilot:
        await monitor_at_step(pilot, 5)
        await wait_for(pilot, lambda: app.editor is not None and app.editor.is_mounted,
                       what="the editor underneath mounted before the app exits")
    # The app is gone; the run is not (it never depended on the TUI process).
    assert effective_state(live_run) == "running"
    again = MonitorTestApp(live_run.path.parent, attach=live_run)
    async with again.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(again.screen, MonitorScreen) and again.screen.loaded,
                       what="monitor loaded")
        model = again.screen.model
        assert model.train["step"][0] == 1  # history from the very first step, not from the attach
        seen = model.step
        await wait_for(pilot, lambda: model.step > seen, what="still live after re-attach")
        assert again.screen.state == "running"


@pytest.mark.slow
async def test_real_tiny_cpu_run_launched_from_the_editor(tmp_path) -> None:
    """F5 in the editor -> launch dialog -> Enter -> monitor of a real accelerate launch on CPU."""
    from tui.screens.launch_dialog import LaunchDialog

    overrides = ["training.max_steps=12", "training.eval_steps=6", "training.save_strategy=\"no\"",
                 "training.logging_steps=2"]
    from runner import presets
    from tui.app import state_from

    app = MonitorTestApp(tmp_path / "runs")
    app.state = state_from(presets.load("demo", overrides))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.editor.ready, what="the editor")
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, LaunchDialog) and app.screen.plan is not None,
                       what="launch dialog with its plan")
        assert "accelerate.commands.launch" in str(app.screen.query_one("#launch-command").render())
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), what="monitor")
        screen = app.screen
        await wait_for(pilot, lambda: screen.state in ("finished", "failed"), timeout=300, what="run end")
        assert screen.state == "finished", screen.run.log.read_text()[-2000:]
        assert len(screen.model.train) > 0 and len(screen.model.evals) > 0
        assert screen.model.samples  # the demo preset has generation prompts
        events = read_events(screen.run.events)
        assert events[-1]["type"] == "run_finished"
