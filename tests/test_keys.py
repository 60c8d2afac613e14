"""Every key binding of the editor pressed as a user would, with its effect asserted; and the help panel
following the focus (a field's help must not stay up once the focus is on the section list)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from textual.widgets import Input

from runner import presets
from runner.paths import shipped_presets_dir
from tui.app import TunedeckApp, state_from
from tui.screens.changes import ChangesScreen
from tui.screens.editor import EditorScreen
from tui.screens.help_screen import HelpScreen
from tui.screens.launch_dialog import LaunchDialog
from tui.screens.open_preset import OpenScreen
from tui.screens.runs import RunsScreen
from tui.screens.save_as import SaveAsScreen
from tui.services import NoProbe
from tui.widgets.field_row import FieldRow, row_id
from tui.widgets.help_panel import HelpPanel

from conftest import settle_editor

SIZE = (120, 40)


def no_gpu() -> NoProbe:
    return NoProbe(reason="no NVIDIA driver found", driver="")


def app_on(source: str | Path = "demo") -> TunedeckApp:
    return TunedeckApp(state_from(presets.load(source)), probe=no_gpu)


@pytest.fixture
def user_preset(tmp_path: Path) -> Path:
    path = tmp_path / "mine.toml"
    shutil.copy(shipped_presets_dir() / "demo.toml", path)
    return path


def help_text(app: TunedeckApp) -> str:
    return str(app.editor.query_one("#help-text").render())


async def show_group(pilot, group_index: int) -> None:
    sections = pilot.app.editor.query_one("#sections")
    sections.focus()
    sections.highlighted = group_index
    await pilot.pause()


async def focus_field(pilot, key: str) -> Input:
    field = pilot.app.editor.query_one(f"#{row_id(key)}", FieldRow).query_one(Input)
    field.focus()
    await pilot.pause()
    return field


async def press_and_back(pilot, key: str, screen_type: type) -> None:
    """Press `key`: `screen_type` opens over the editor; Escape closes it again."""
    await pilot.press(key)
    await pilot.pause(0.2)
    assert isinstance(pilot.app.screen, screen_type), f"{key} opened {pilot.app.screen!r}"
    await pilot.press("escape")
    await pilot.pause(0.2)
    assert isinstance(pilot.app.screen, EditorScreen), f"Escape after {key} left {pilot.app.screen!r}"


async def test_the_help_panel_follows_the_focus_to_the_section_list_and_back() -> None:
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        await settle_editor(pilot)
        await show_group(pilot, 4)  # Batch & steps
        assert "Sections" in help_text(app)  # the section list explains itself
        await focus_field(pilot, "training.max_steps")
        assert "training.max_steps" in help_text(app) and "Sections" not in help_text(app)
        await pilot.press("tab")  # on to the next field: its help replaces the last one
        assert "training.seed" in help_text(app) and "training.max_steps" not in help_text(app)
        await pilot.press("shift+tab")
        assert "training.max_steps" in help_text(app)
        app.editor.query_one("#sections").focus()  # back to the section list: no field's help stays
        await pilot.pause()
        assert "training." not in help_text(app) and "Sections" in help_text(app)


async def test_f4_hides_and_shows_the_help_panel_and_f1_opens_the_full_help() -> None:
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        await settle_editor(pilot)
        panel = app.editor.query_one(HelpPanel)
        assert panel.display
        await pilot.press("f4")
        assert not panel.display
        await pilot.press("f4")
        assert panel.display
        await show_group(pilot, 4)
        await focus_field(pilot, "training.max_steps")
        await pilot.press("f1")
        await pilot.pause(0.2)
        assert isinstance(app.screen, HelpScreen) and app.screen._spec.key == "training.max_steps"  # the focused field
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert isinstance(app.screen, EditorScreen)


async def test_every_editor_key_that_opens_a_screen_opens_it() -> None:
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        await settle_editor(pilot)
        await press_and_back(pilot, "f2", SaveAsScreen)
        await press_and_back(pilot, "ctrl+s", SaveAsScreen)  # a shipped preset is saved under a new name
        await press_and_back(pilot, "ctrl+o", OpenScreen)
        await press_and_back(pilot, "f3", ChangesScreen)
        await press_and_back(pilot, "f5", LaunchDialog)
        await press_and_back(pilot, "f9", RunsScreen)


async def test_ctrl_s_saves_a_user_preset_in_place(user_preset: Path) -> None:
    app = app_on(user_preset)
    async with app.run_test(size=SIZE) as pilot:
        await settle_editor(pilot)
        await show_group(pilot, 4)
        await focus_field(pilot, "training.seed")
        await pilot.press("ctrl+u", "7")
        await pilot.pause(0.2)
        assert app.editor.state.dirty
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        assert not app.editor.state.dirty
    assert presets.load(user_preset).config.training.seed == 7


async def test_f6_applies_the_first_memory_suggestion() -> None:
    app = app_on("lora-1b")  # the CPU demo gets no memory suggestion: nothing a CPU could use (test_remedies)
    async with app.run_test(size=SIZE) as pilot:
        await settle_editor(pilot)
        estimate = app.editor.estimate
        assert estimate is not None and estimate.suggestions, "lora-1b on a 24 GB target has suggestions"
        changes = estimate.suggestions[0].changes
        await pilot.press("f6")
        await pilot.pause(0.3)
        from runner.schema import get_value

        for key, value in changes.items():
            assert get_value(app.editor.state.config, key) == value
        assert app.editor.state.dirty


# --- the runs screen and the monitor, on finished runs written to disk -------------------------------------
async def test_every_runs_screen_key(tmp_path: Path) -> None:
    from datetime import datetime

    from fixtures.monitor_app import MonitorTestApp, history_run, wait_for
    from tui.screens.compare import CompareScreen
    from tui.screens.monitor import MonitorScreen

    root = tmp_path / "runs"
    history_run(root, steps=60, stamp=datetime(2024, 1, 2, 3, 4, 5))
    history_run(root, steps=80, stamp=datetime(2024, 1, 3, 3, 4, 5))
    app = MonitorTestApp(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle_editor(pilot)
        await pilot.press("f9")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.rows) == 2, what="runs")
        runs = app.screen
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), what="the monitor")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is runs, what="back on the runs screen")
        await pilot.press("m")
        assert runs.marked is not None
        marked = runs.marked.path
        await pilot.press("down", "c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), what="compare")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is runs, what="back from compare")
        assert runs.selected().path != marked
        await pilot.press("m", "m")  # marking twice un-marks
        assert runs.marked is None
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen), what="the editor")
        await pilot.press("f9")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="the runs screen again")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen), what="Esc: back to the editor")


async def test_every_monitor_key_on_a_finished_run(tmp_path: Path) -> None:
    from fixtures.monitor_app import MonitorTestApp, history_run, wait_for
    from tui.screens.monitor import MonitorScreen
    from tui.widgets.run_plots import RunPlots

    run = history_run(tmp_path / "runs", steps=60)
    app = MonitorTestApp(tmp_path / "runs", attach=run)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen) and len(app.screen.model.train) > 0,
                       what="the monitor with its history")
        monitor = app.screen
        plots = monitor.query_one(RunPlots)
        await pilot.press("x")
        assert plots.x_axis == "epoch"
        await pilot.press("x")
        assert plots.x_axis == "step"
        await pilot.press("p")
        assert plots.has_class("-rate")
        await pilot.press("p")
        assert not plots.has_class("-rate")
        await pilot.press("g")
        assert monitor.has_class("-side")
        await pilot.press("g")
        assert not monitor.has_class("-side")
        await pilot.press("w")
        await wait_for(pilot, lambda: monitor.watcher.filter is not None, what="the warnings filter")
        await pilot.press("w")
        await wait_for(pilot, lambda: monitor.watcher.filter is None, what="the warnings filter off")
        await pilot.press("slash")
        box = monitor.query_one("#log-filter", Input)
        assert box.display and box.has_focus
        await pilot.press(*"step", "enter")
        await wait_for(pilot, lambda: monitor.watcher.filter is not None, what="the typed filter")
        await pilot.press("escape")  # Esc clears the filter first, then leaves
        await wait_for(pilot, lambda: monitor.watcher.filter is None, what="the filter cleared")
        assert app.screen is monitor
        await pilot.press("o")
        await pilot.pause(0.2)
        assert app.clipboard.endswith("final") or "final" in app.clipboard
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.compare_with is not None,
                       what="pick a run to compare with")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is monitor, what="back on the monitor")
        await pilot.press("e")  # clone & edit: the run's config, in the editor, as a new unsaved preset
        await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen), what="the editor")
        assert app.editor.state.config.training.max_steps == presets.load("demo").config.training.max_steps
