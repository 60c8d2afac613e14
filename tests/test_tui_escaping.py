"""The editor shows input the way the CLI prints it: control characters escaped, markup shown as text."""

from __future__ import annotations

from textual.app import App, ComposeResult

from runner.problems import Problem
from tui.markup import safe
from tui.widgets.problems_list import ProblemsList


class ProblemsApp(App[None]):
    def compose(self) -> ComposeResult:
        yield ProblemsList(id="problems")


def test_safe_escapes_controls_and_markup() -> None:
    from textual.content import Content

    shown = Content.from_markup(safe("a\x1b[2J [b]bold[/b] \u202eevil"))
    assert shown.plain == "a\\x1b[2J [b]bold[/b] \\u202eevil"
    assert len(safe("x" * 10_000)) < 200


async def test_problems_list_shows_hostile_keys_and_messages_as_text() -> None:
    app = ProblemsApp()
    async with app.run_test(size=(120, 10)) as pilot:
        widget = app.query_one(ProblemsList)
        widget.show([Problem("error", "value [b]x[/b]\x07 is not allowed", key="training.\x1b]0;title",
                             hint="did you mean [@click=app.quit]this[/]?")])
        await pilot.pause()
        text = widget.render().plain if hasattr(widget.render(), "plain") else str(widget.render())
        assert "training.\\x1b]0;title" in text
        assert "value [b]x[/b]\\x07 is not allowed" in text
        assert "[@click=app.quit]this[/]" in text
        assert "\x1b" not in text and "\x07" not in text


async def test_the_editor_lists_a_hostile_value_escaped(tmp_path) -> None:
    from conftest import settle_editor
    from runner import presets
    from tui.app import TunedeckApp, state_from
    from tui.services import NoProbe

    preset = tmp_path / "hostile.toml"
    preset.write_text('extends = "demo"\n[launch]\ngpu_ids = "0\\u001b[2J[b]1"\n')
    loaded = presets.load(preset)
    assert loaded.config is not None and not loaded.ok  # opens in the editor, with the problem listed
    app = TunedeckApp(state_from(loaded), probe=lambda: NoProbe(reason="test"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle_editor(pilot)
        text = str(app.editor.query_one(ProblemsList).render())
        assert "\x1b" not in text and "0\\x1b[2J[b]1" in text
