"""Snapshots of the editor (pytest-textual-snapshot): main screen at 80x24 and 160x48, and the help.

Deterministic by construction: fixed terminal sizes, a fixed no-GPU report (so the gauge sizes
for the default 24 GB target), isolated user dirs (no drafts or recent files), shipped presets.
Update after an intended UI change with `pytest tests/test_tui_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

from fixtures.monitor_app import wait_for
from runner import presets
from runner.schema import GROUPS

from tests.conftest import settle_editor
from tui.app import TunedeckApp, state_from
from tui.services import NoProbe
from tui.widgets.field_row import row_id


def app_for(preset: str) -> TunedeckApp:
    return TunedeckApp(state_from(presets.load(preset)), probe=lambda: NoProbe(reason="no NVIDIA driver found"))


async def settle(pilot) -> None:
    await settle_editor(pilot, pause=0.2)


def test_main_screen_80x24(snap_compare) -> None:
    assert snap_compare(app_for("demo"), terminal_size=(80, 24), run_before=settle)


def test_main_screen_160x48(snap_compare) -> None:
    assert snap_compare(app_for("qlora-8b"), terminal_size=(160, 48), run_before=settle)


async def focus_learning_rate(pilot) -> None:
    """As a user gets there: Down to the Optimizer section, Tab into its first field (learning_rate)."""
    await settle(pilot)
    editor = pilot.app.editor
    await wait_for(pilot, lambda: pilot.app.focused is editor.query_one("#sections"), what="the section list")
    await pilot.press(*["down"] * GROUPS.index("Optimizer"))
    # Wait on conditions, not time: on a loaded machine the form may take a while to switch sections.
    await wait_for(pilot, lambda: editor.form.group == "Optimizer"
                   and bool(editor.query(f"#{row_id('training.learning_rate')}")), what="the Optimizer section")
    await pilot.press("tab")
    field = editor.query_one(f"#{row_id('training.learning_rate')}").query_one("Input")
    await wait_for(pilot, lambda: pilot.app.focused is field, what="learning_rate focused")
    field.cursor_blink = False  # not set-up but the picture: a blinking cursor is drawn or not by the clock
    await settle(pilot)


def test_help_panel_for_the_focused_field(snap_compare) -> None:
    assert snap_compare(app_for("lora-1b"), terminal_size=(120, 36), run_before=focus_learning_rate)


async def open_full_help(pilot) -> None:
    await focus_learning_rate(pilot)
    await pilot.press("f1")
    await settle(pilot)


def test_full_help_f1(snap_compare) -> None:
    assert snap_compare(app_for("lora-1b"), terminal_size=(100, 32), run_before=open_full_help)
