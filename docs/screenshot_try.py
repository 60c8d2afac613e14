"""Regenerate docs/screenshot-try.svg: the Try screen comparing the trained demo with its base model.

    python docs/screenshot_try.py [RUN]     (without RUN: trains the demo preset first)

Drives the real app with Textual's Pilot and the real playground subprocess, then saves the
screen with App.save_screenshot.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


async def shoot(run_dir: Path) -> Path:
    from runner import presets
    from runner.rundir import RunDir
    from tui.app import TunedeckApp, state_from
    from tui.screens.try_screen import TryScreen

    app = TunedeckApp(state_from(presets.load("demo")))
    async with app.run_test(size=(130, 36)) as pilot:
        screen = TryScreen(RunDir(run_dir))
        await app.push_screen(screen)
        deadline = time.monotonic() + 600
        while screen.info is None and screen.fatal is None and time.monotonic() < deadline:
            await pilot.pause(0.2)
        screen.query_one("#try-prompt").value = presets.load("demo").config.generation.prompts[0]
        await pilot.press("f6")  # compare with the base model
        await pilot.press("enter")
        while not screen.columns or any(c.state not in ("done", "error") for c in screen.columns.values()):
            await pilot.pause(0.2)
        screen.query_one("#field-generation--temperature Input").focus()  # its help in the panel
        await pilot.pause(2.0)  # the footer redraws after the focus moves
        return Path(app.save_screenshot(filename="screenshot-try.svg", path=str(ROOT / "docs")))


def main() -> int:
    if len(sys.argv) > 1:
        run = Path(sys.argv[1]).resolve()
    else:
        from try_latency import train_demo

        run = train_demo(Path(tempfile.mkdtemp()))
    print(asyncio.run(shoot(run)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
