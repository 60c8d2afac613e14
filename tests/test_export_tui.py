"""The editor's command palette exports every format to the path typed in the Save-as dialog."""

from __future__ import annotations

from pathlib import Path

from runner import presets
from runner.convert import import_file
from runner.export import FORMATS
from tui.app import TunedeckApp, state_from
from tui.screens.save_as import SaveAsScreen
from tui.services import NoProbe
from textual.command import CommandList, CommandPalette
from textual.widgets import Input

from fixtures.monitor_app import wait_for

SIZE = (100, 40)


def highlighted(palette: CommandPalette) -> str:
    """The first line of the palette's highlighted command ("" while it has none)."""
    results = palette.query_one(CommandList)
    if results.highlighted is None:
        return ""
    return str(results.get_option_at_index(results.highlighted).prompt).splitlines()[0].strip()


def make_app() -> TunedeckApp:
    return TunedeckApp(state_from(presets.load("lora-1b")), probe=lambda: NoProbe(reason="no GPU", driver=""))


async def test_palette_lists_every_export_format() -> None:
    app = make_app()
    async with app.run_test(size=SIZE):
        titles = [c.title for c in app.get_system_commands(app.editor)]
        assert [f"Export {fmt}" for fmt in FORMATS] == [t for t in titles if t.startswith("Export ") and t != "Export TOML"]


async def test_export_from_the_palette_writes_the_typed_path(tmp_path: Path) -> None:
    app = make_app()
    target = tmp_path / "cluster" / "job.sbatch"
    target.parent.mkdir()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), what="the command palette")
        await pilot.press(*"Export sbatch")
        await wait_for(pilot, lambda: highlighted(app.screen) == "Export sbatch", what="Export sbatch found")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SaveAsScreen) and app.screen.query("#save-as-name"),
                       what="the save-as dialog")
        field = app.screen.query_one("#save-as-name", Input)
        assert field.value == "./lora-1b.sbatch"
        field.value = str(target)
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
    assert target.is_file() and "#SBATCH --nodes=1" in target.read_text()
    assert import_file(target).raw["lora"]["enabled"] is True  # and it reads back as the preset
