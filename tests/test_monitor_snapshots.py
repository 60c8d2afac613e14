"""Snapshots of the monitor at 80x24 and 160x48 (pytest-textual-snapshot).

Deterministic by construction: a run written at once with fixed times and a fixed name, fixed
machine readings, isolated user dirs. Update after an intended UI change with
`pytest tests/test_monitor_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import pytest

from fixtures.monitor_app import MonitorTestApp, history_run, wait_for
from tui.screens.monitor import MonitorScreen


async def settle(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.loaded
                   and app.screen._drawn_version >= 0, what="the monitor loaded and drawn")
    await app.workers.wait_for_complete()
    await pilot.pause(0.3)  # the picture: a few more frames for the drawn plots to reach the screen


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_monitor_of_an_overfitting_run(snap_compare, tmp_path, size) -> None:
    run = history_run(tmp_path / "runs", "overfit", steps=200)
    assert snap_compare(MonitorTestApp(tmp_path / "runs", attach=run), terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_monitor_of_a_run_that_ran_out_of_memory(snap_compare, tmp_path, size) -> None:
    run = history_run(tmp_path / "runs", "oom", steps=120)
    assert snap_compare(MonitorTestApp(tmp_path / "runs", attach=run), terminal_size=size, run_before=settle)
