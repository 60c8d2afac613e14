"""The TUI process stays light (no ML libraries) and the console script handles bad input cleanly."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT, imported_heavy_modules, python_env

from tui import cli

RUN_APP = """
import asyncio
from runner import presets
from tui.app import TunedeckApp, state_from
from tui.services import NoProbe

async def main():
    app = TunedeckApp(state_from(presets.load("qlora-8b")), probe=lambda: NoProbe(reason="test"))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("ctrl+o")  # the Open picker estimates every preset
        await pilot.pause(0.5)
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
