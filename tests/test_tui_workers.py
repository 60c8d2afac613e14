"""Workers across the screens, driven by Pilot as a user meets them: a worker that fails is shown by
name (a notification; the app keeps running), results arrive as typed messages, and the launch
dialog's buttons name their keys at 80x24."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Button, Static

from fixtures.monitor_app import (MonitorTestApp, capture_notifications, history_run, three_runs_one_unsupervised,
                                  wait_for)
from runner import presets
from tui.app import TunedeckApp, state_from
from tui.screens.compare import CompareScreen
from tui.screens.launch_dialog import LaunchDialog
from tui.screens.open_preset import OpenScreen
from tui.screens.runs import RunsScreen
from tui.services import NoProbe


def editor_app() -> TunedeckApp:
    return TunedeckApp(state_from(presets.load("demo")), probe=lambda: NoProbe(reason="no NVIDIA driver found"))


def two_runs_one_damaged(root: Path):
    from datetime import datetime

    good = history_run(root, "normal", steps=20, name="good", stamp=datetime(2024, 1, 2, 3, 4, 5))
    bad = history_run(root, "normal", steps=20, name="bad", stamp=datetime(2024, 1, 3, 3, 4, 5))
    bad.events.unlink()
    bad.events.mkdir()  # a damaged run directory: its events are not a file
    return good, bad


async def test_a_damaged_run_says_so_on_its_row_and_comparing_it_shows_the_failed_worker(tmp_path) -> None:
    good, bad = two_runs_one_damaged(tmp_path / "runs")
    app = MonitorTestApp(tmp_path / "runs", open_runs=True)
    notes = capture_notifications(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.rows) == 2,
                       what="both runs listed")
        runs = app.screen
        if list(runs.rows)[0] != bad.name:
            await pilot.press("down")  # to the damaged run
        await wait_for(pilot, lambda: "cannot read events.jsonl" in str(runs.query_one("#runs-hint", Static).render()),
                       what="the damaged row's detail")
        await pilot.press("m", "up" if list(runs.rows)[1] == bad.name else "down", "c")  # mark it, compare with the other
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), what="the compare screen")
        await wait_for(pilot, lambda: any("load both runs failed: IsADirectoryError" in n for n in notes),
                       what="the failed worker named")
        assert app.is_running and isinstance(app.screen, CompareScreen)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is runs, what="back on the runs")


async def test_a_failing_estimate_in_the_open_picker_is_shown_and_the_picker_still_opens(tmp_path) -> None:
    app = editor_app()
    notes = capture_notifications(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.editor.ready, timeout=120, what="the editor")

        def broken(config) -> str:
            raise ValueError("estimator broke")

        app.editor.summarise = broken  # the picker asks the editor for each preset's estimate
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, OpenScreen), what="the picker")
        await wait_for(pilot, lambda: any("estimate presets failed: ValueError: estimator broke" in n for n in notes),
                       what="the failed worker named")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.editor, what="back in the editor")
        assert app.is_running


async def test_an_export_result_arrives_as_a_message(tmp_path) -> None:
    app = editor_app()
    notes = capture_notifications(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.editor.ready, timeout=120, what="the editor")
        config = app.editor.state.config
        (tmp_path / "a-file").write_text("")
        app.write_export(config, "demo", "accelerate-cmd", tmp_path / "a-file" / "demo.sh")  # under a file: refused
        await wait_for(pilot, lambda: any("Not exported" in n for n in notes), what="the refusal")
        app.write_export(config, "demo", "accelerate-cmd", tmp_path / "demo.sh")
        await wait_for(pilot, lambda: any("Exported (accelerate-cmd)" in n for n in notes), what="the export")
        assert "accelerate" in (tmp_path / "demo.sh").read_text()


async def test_the_launch_dialog_buttons_name_their_keys_at_80x24(tmp_path) -> None:
    app = editor_app()
    app.runs_dir = tmp_path / "runs"
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.editor.ready, timeout=120, what="the editor")
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, LaunchDialog), what="the launch dialog")
        dialog = app.screen
        await wait_for(pilot, lambda: dialog.report is not None, what="the GPU probe")
        await pilot.pause(0.1)
        screen_region = dialog.region
        for button_id, label in (("launch-go", "Launch (Enter)"), ("launch-data", "Data (d)"),
                                 ("launch-cancel", "Cancel (Esc)")):
            button = dialog.query_one(f"#{button_id}", Button)
            assert str(button.label) == label
            assert screen_region.contains_region(button.region), (button_id, button.region)
            assert button.content_region.width >= len(label), (button_id, button.content_region)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.editor, what="cancelled")


async def test_the_runs_table_at_80x24_shows_state_progress_loss_and_best_eval_whole_from_the_first_picture(
        tmp_path) -> None:
    from textual.widgets import DataTable

    root = tmp_path / "runs"
    _, _, lock = three_runs_one_unsupervised(root)  # one a trainer whose supervisor died: the widest state label
    try:
        app = MonitorTestApp(root, open_runs=True)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.rows) == 3,
                           what="runs listed")
            await pilot.pause(0.1)  # painted once (the listing refreshes every 2 s: this is the first picture)
            table = app.screen.query_one(DataTable)
            shown = [table.render_line(y).text for y in range(1, 4)]
            for row, line in zip(app.screen.rows.values(), shown):
                assert len(line.rstrip()) <= 80
                for cell in row.cells[1:5]:  # state, progress, loss, best eval: whole, on screen
                    assert f" {cell} " in f" {line} ", (str(cell), line)
            assert any("running (unsupervised)" in line for line in shown)
    finally:
        import os

        os.close(lock)
