"""The TUI process stays light (no ML libraries) and the console script handles bad input cleanly."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT, imported_heavy_modules, python_env
from fixtures.monitor_app import wait_for

from tui import cli

RUN_APP = """
import asyncio, time
from runner import presets
from tui.app import TunedeckApp, state_from
from tui.screens.open_preset import OpenScreen
from tui.services import NoProbe

async def until(pilot, condition):
    deadline = time.monotonic() + 120
    while not condition():
        assert time.monotonic() < deadline
        await pilot.pause(0.05)

async def main():
    app = TunedeckApp(state_from(presets.load("qlora-8b")), probe=lambda: NoProbe(reason="test"))
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.editor.ready)
        await pilot.press("ctrl+o")  # the Open picker estimates every preset
        await until(pilot, lambda: isinstance(app.screen, OpenScreen))
        await app.workers.wait_for_complete()

asyncio.run(main())
"""


def test_running_the_editor_imports_no_ml_libraries() -> None:
    assert imported_heavy_modules(RUN_APP) == []


def test_console_script_imports_no_ml_libraries() -> None:
    assert imported_heavy_modules("import tui.cli, tui.app") == []


def test_edit_of_a_missing_file_fails_with_a_message_not_a_traceback(tmp_path) -> None:
    missing = tmp_path / "nope.toml"
    out = subprocess.run([sys.executable, "-m", "tui.cli", "edit", str(missing)], capture_output=True, text=True,
                         env=python_env(), cwd=ROOT, timeout=60)
    assert out.returncode == 2
    assert "nope.toml" in out.stderr and "Traceback" not in out.stderr


def test_edit_of_a_broken_file_names_the_line(tmp_path, capsys) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[training]\nlearning_rate = = 3\n")
    assert cli.main(["edit", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "broken.toml:2" in err


def test_other_commands_go_to_the_runner_cli(capsys) -> None:
    assert cli.main(["presets"]) == 0
    assert "demo" in capsys.readouterr().out


def test_the_first_frame_needs_neither_pydantic_nor_the_schema() -> None:
    """`tunedeck` paints before the schema side loads: importing the app must not pull it in."""
    code = ("import sys, tui.cli, tui.app\n"
            "print(sorted(m for m in ('pydantic', 'tomlkit', 'runner.schema', 'runner.presets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=python_env(), cwd=ROOT,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"


async def test_the_editor_loads_its_preset_after_the_first_frame() -> None:
    from textual.widgets import Input

    from tui.app import TunedeckApp
    from tui.services import NoProbe

    app = TunedeckApp(source="lora-1b", probe=lambda: NoProbe(reason="test"))
    async with app.run_test(size=(120, 40)) as pilot:
        editor = app.editor
        assert editor.state is None and not editor.ready  # the frame came first
        assert not editor.query("FieldForm")
        await wait_for(pilot, lambda: editor.ready, timeout=120, what="the preset loaded")
        assert editor.state.name == "lora-1b" and editor.state.config.lora.enabled
        await pilot.press("tab")  # from the section list into the first field: the keys work
        assert isinstance(app.focused, Input) or app.focused is not None
        assert app.focused is not editor.query_one("#sections")


async def test_keys_pressed_while_loading_are_not_lost_or_crashing() -> None:
    from tui.app import TunedeckApp
    from tui.services import NoProbe

    app = TunedeckApp(source="demo", probe=lambda: NoProbe(reason="test"))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("down", "down", "f3", "ctrl+s")  # to LoRA; changes/save (dimmed until it loads)
        await wait_for(pilot, lambda: app.editor.ready, timeout=120, what="the preset loaded")
        # the section moved to while loading is the one shown
        await wait_for(pilot, lambda: app.editor.form.group == "LoRA", timeout=60, what="the LoRA section")
        assert app.editor in app.screen_stack and app.is_running


def test_actions_that_need_the_preset_are_dimmed_until_it_is_loaded() -> None:
    from tui.screens.editor import EditorScreen

    loading = EditorScreen(source="demo")
    assert loading.check_action("launch", ()) is None and loading.check_action("save", ()) is None


async def test_quitting_while_the_preset_loads_exits_cleanly() -> None:
    from tui.app import TunedeckApp
    from tui.services import NoProbe

    for _ in range(3):
        app = TunedeckApp(source="qlora-8b", probe=lambda: NoProbe(reason="test"))
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("ctrl+q")
        assert app.return_code == 0


async def test_an_unreadable_preset_exits_with_its_problems(tmp_path, capsys) -> None:
    from tui.app import TunedeckApp

    broken = tmp_path / "broken.toml"
    broken.write_text("[training]\nlearnig_rate = 3e-4\n")
    app = TunedeckApp(source=str(broken))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.return_code is not None, timeout=120, what="the app to exit")
    assert app.return_code == 2
    message = capsys.readouterr().err  # printed once the terminal is restored
    assert "broken.toml:2" in message and "learning_rate" in message  # where, and "did you mean"


async def test_started_on_the_runs_screen_the_editor_loads_only_when_shown(tmp_path) -> None:
    from tui.app import TunedeckApp
    from tui.screens.runs import RunsScreen
    from tui.services import NoProbe

    app = TunedeckApp(source="demo", probe=lambda: NoProbe(reason="test"), runs_dir=tmp_path, open_runs=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="the runs screen")
        assert app.editor.state is None  # nothing built behind the runs screen
        await pilot.press("e")  # to the editor: it loads now
        await wait_for(pilot, lambda: app.editor.ready, timeout=120, what="the preset loaded")
        assert app.editor.state.name == "demo"
        await pilot.press("f9")  # the runs again, opened from the editor this time:
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="the runs screen")
        await pilot.press("escape")  # Esc goes back to the editor
        await wait_for(pilot, lambda: app.screen is app.editor, what="back in the editor")
        assert app.is_running


async def test_escape_on_the_runs_screen_of_tunedeck_runs_quits(tmp_path) -> None:
    from tui.app import TunedeckApp
    from tui.screens.runs import RunsScreen
    from tui.services import NoProbe

    app = TunedeckApp(source="demo", probe=lambda: NoProbe(reason="test"), runs_dir=tmp_path, open_runs=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="the runs screen")
        assert "Quit" in " ".join(str(w.render()) for w in app.screen.query("FooterKey"))
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.is_running, what="the app to exit")
    assert app.return_code == 0
