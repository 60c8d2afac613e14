"""The monitor on runs already on disk: history loaded, follow/unfollow, filter, plots, diagnosis
banners, apply-a-fix into the editor, the runs list and compare. Real app, real files, Pilot."""

from __future__ import annotations

import contextlib

import pytest

from fixtures.monitor_app import MonitorTestApp, history_run, wait_for
from runner.schema import get_value
from tui.screens.compare import CompareScreen
from tui.screens.editor import EditorScreen
from tui.screens.monitor import MonitorScreen
from tui.screens.runs import RunsScreen
from tui.widgets.diagnosis_banner import DiagnosisBanner
from tui.widgets.log_view import LogView
from tui.widgets.run_plots import LossPlot


async def open_monitor(pilot, app) -> MonitorScreen:
    await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.loaded
                   and app.screen._drawn_version >= 0, what="the monitor loaded and drawn")
    return app.screen


@contextlib.asynccontextmanager
async def monitor_of(tmp_path, scenario: str, steps: int, size: tuple[int, int] = (100, 30)):
    """The monitor, loaded and drawn, of a finished `scenario` run of `steps` steps: (run, pilot, monitor)."""
    run = history_run(tmp_path / "runs", scenario, steps=steps)
    app = MonitorTestApp(tmp_path / "runs", attach=run)
    async with app.run_test(size=size) as pilot:
        yield run, pilot, await open_monitor(pilot, app)


async def apply_fix(tmp_path, scenario: str, steps: int):
    """The monitor of a finished `scenario` run; `a` applies the diagnosis' fix. (The run, the editor's state.)"""
    async with monitor_of(tmp_path, scenario, steps, (120, 40)) as (run, pilot, _monitor):
        app = pilot.app
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen), what="the editor with the fix")
        return run, app.screen.state


async def test_finished_run_opens_with_its_whole_history_following_the_end(tmp_path) -> None:
    async with monitor_of(tmp_path, "normal", 120) as (run, pilot, screen):
        assert screen.model.step == 120 and len(screen.model.train) == 120
        assert screen.state == "finished"
        log = screen.query_one(LogView)
        assert log.following
        assert log.total == sum(1 for _ in open(run.log, encoding="utf-8"))
        assert log.visible_text()[-1].startswith("[tunedeck] finished at step 120")
        assert not screen.query_one(DiagnosisBanner).display  # a healthy run: no banner


async def test_scrolling_up_unfollows_and_end_follows_again(tmp_path) -> None:
    async with monitor_of(tmp_path, "normal", 200) as (run, pilot, screen):
        log = screen.query_one(LogView)
        await pilot.press("pageup")
        await wait_for(pilot, lambda: not log.following, what="pageup unfollows")
        assert "paused" in str(log.border_title)
        top = log.scroll_offset.y
        await pilot.press("up")
        assert log.scroll_offset.y == top - 1
        await pilot.press("end")
        await wait_for(pilot, lambda: log.following and log.scroll_offset.y == log.max_scroll_y, what="end follows")


async def test_problem_filter_shows_only_matching_lines_and_escape_clears_it(tmp_path) -> None:
    async with monitor_of(tmp_path, "normal", 200) as (run, pilot, screen):
        log = screen.query_one(LogView)
        everything = log.total
        await pilot.press("w")
        await wait_for(pilot, lambda: log.filter is not None, what="the warnings filter")
        expected = sum(1 for line in open(run.log, encoding="utf-8") if "WARNING" in line or "Traceback" in line)
        assert log.total == expected > 0
        assert all("WARNING" in line for line in log.visible_text())
        await pilot.press("escape")
        await wait_for(pilot, lambda: log.filter is None, what="the filter cleared")
        assert log.total == everything


async def test_typed_filter_matches_case_insensitively(tmp_path) -> None:
    async with monitor_of(tmp_path, "normal", 50) as (run, pilot, screen):
        await pilot.press("slash")
        await pilot.press(*"STEP 42 ")
        await pilot.press("enter")
        log = screen.query_one(LogView)
        await wait_for(pilot, lambda: log.filter is not None, what="the typed filter")
        assert log.total == 3  # the three output lines of step 42
        assert all("step 42 " in line for line in log.visible_text())


@pytest.mark.parametrize(("scenario", "title"), [
    ("oom", "Out of memory"),
    ("nan", "The loss became NaN or infinite"),
    ("overfit", "Overfitting"),
    ("flat", "Loss is not falling"),
    ("spike", "Gradient-norm spikes"),
])
async def test_diagnosis_banner_names_the_problem(tmp_path, scenario, title) -> None:
    async with monitor_of(tmp_path, scenario, 200, (120, 40)) as (run, pilot, screen):
        banner = screen.query_one(DiagnosisBanner)
        assert banner.display
        assert banner.findings[0].title == title
        assert title in str(banner.render())


def first_memory_remedy(run) -> dict:
    """The changes of the estimator's first remedy for the run's config (what diagnosis offers)."""
    from runner import presets
    from runner.diagnose import memory_remedies
    from runner.events import read_events

    failed = read_events(run.events)[-1]
    return memory_remedies(presets.require(run.config).config, failed["message"], gpu_count=0)[0].changes


async def test_apply_fix_opens_the_config_in_the_editor_with_the_change(tmp_path) -> None:
    run, state = await apply_fix(tmp_path, "oom", steps=100)
    # the fix is the estimator's first remedy (the gauge's list): demo's batch 16 split, same effective batch
    for key, value in first_memory_remedy(run).items():
        assert get_value(state.config, key) == value
    training = state.config.training
    assert training.per_device_train_batch_size < 16
    assert training.per_device_train_batch_size * training.gradient_accumulation_steps == 16
    assert state.dirty and state.path is None  # a new, unsaved config: F5 launches it as a new run


async def test_overfitting_fix_sets_up_early_stopping_that_validates(tmp_path) -> None:
    from runner.validate import check

    config = (await apply_fix(tmp_path, "overfit", steps=200))[1].config
    assert config.training.early_stopping_patience == 3 and config.training.load_best_model_at_end
    assert [p for p in check(config) if p.is_error] == []


async def test_plots_switch_between_step_and_epoch(tmp_path) -> None:
    async with monitor_of(tmp_path, "normal", 100, (120, 40)) as (run, pilot, screen):
        plot = screen.query_one(LossPlot)
        assert "x: step" in plot.plt.build()
        await pilot.press("x")
        await wait_for(pilot, lambda: "x: epoch" in plot.plt.build(), what="the plot per epoch")


async def test_runs_screen_lists_runs_and_opens_one(tmp_path) -> None:
    root = tmp_path / "runs"
    history_run(root, "normal", steps=60)
    history_run(root, "oom", steps=60, name="big")
    app = MonitorTestApp(root, open_runs=True)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.rows) == 2, what="both runs")
        screen = app.screen
        assert {row.state for row in screen.rows.values()} == {"finished", "failed"}
        assert any("best eval" in str(c.label) for c in screen.query_one("DataTable").columns.values())
        await pilot.press("enter")
        monitor = await open_monitor(pilot, app)
        assert monitor.run.name in screen.rows


async def test_compare_shows_only_config_differences_and_both_curves(tmp_path) -> None:
    root = tmp_path / "runs"
    history_run(root, "normal", steps=60, name="a")
    history_run(root, "overfit", steps=60, name="b", **{"training.learning_rate": 0.002})
    app = MonitorTestApp(root, open_runs=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.rows) == 2, what="both runs")
        await pilot.press("m")  # mark the first row, then compare with the second
        await pilot.press("down")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.models is not None,
                       what="compare with both runs loaded")
        await wait_for(pilot, lambda: "B train" in app.screen.query_one("#compare-plot").plt.build(), what="both curves")
        screen = app.screen
        table = screen.query_one("DataTable")
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        assert rows == [["training.learning_rate", "0.002", "0.001"]] or rows == [["training.learning_rate", "0.001", "0.002"]]
        built = screen.query_one("#compare-plot").plt.build()
        assert "A train" in built and "B train" in built


MONITOR_APP = """
import asyncio, sys, tempfile
sys.path.insert(0, "tests")
from pathlib import Path
from fixtures.monitor_app import MonitorTestApp, history_run, wait_for

async def main():
    root = Path(tempfile.mkdtemp()) / "runs"
    run = history_run(root, "overfit", steps=50)
    app = MonitorTestApp(root, attach=run)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: getattr(app.screen, "loaded", False), what="the monitor")
        await pilot.press("f9")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "RunsScreen" and app.screen.rows, what="the runs")

asyncio.run(main())
"""


def test_monitor_and_runs_screens_import_no_ml_libraries(tmp_path, monkeypatch) -> None:
    from conftest import imported_heavy_modules

    assert imported_heavy_modules(MONITOR_APP) == []


def test_the_gpu_panel_tells_the_runs_memory_from_other_processes() -> None:
    from runner.gpu import GpuInfo, GpuProcess
    from tui.widgets.gpu_panel import Readings, machine_text

    gib = 1024**3
    gpu = GpuInfo(index=0, name="H100", total_bytes=80 * gib, free_bytes=30 * gib, used_bytes=50 * gib,
                  processes=[GpuProcess(101, "python", 20 * gib), GpuProcess(102, "python", 18 * gib),
                             GpuProcess(555, "jupyter", 12 * gib)])
    text = str(machine_text(Readings(gpus=[gpu], run_pids=frozenset({100, 101, 102})), 36 * gib))
    assert "50.0/80 GiB run 38.0 est 36.0" in text  # both ranks counted; the estimate beside the run's own
    assert "others 12.0 GiB/1 proc" in text
    # Without per-process figures (some containers), the whole GPU's use is compared instead.
    blind = GpuInfo(index=0, name="H100", total_bytes=80 * gib, free_bytes=30 * gib, used_bytes=50 * gib,
                    processes=[GpuProcess(101, "python", None)])
    assert " run " not in str(machine_text(Readings(gpus=[blind], run_pids=frozenset({101})), 36 * gib))


async def test_apply_fix_from_tunedeck_attach_reaches_the_editor_that_had_not_loaded_yet(tmp_path) -> None:
    """`tunedeck attach` starts on the monitor; the editor underneath loads nothing until shown,
    and the run's config handed to it must win over its default preset."""
    from tui.app import TunedeckApp
    from tui.services import NoProbe

    run = history_run(tmp_path / "runs", "oom", steps=100)
    app = TunedeckApp(source="demo", probe=lambda: NoProbe(reason="test"), runs_dir=tmp_path / "runs",
                      open_runs=True, attach=run)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_monitor(pilot, app)
        assert app.editor.state is None
        await pilot.press("a")
        await wait_for(pilot, lambda: app.editor.ready and app.screen is app.editor and app.editor.state is not None,
                       what="the editor with the run's config")
        state = app.editor.state
        assert state.name.endswith(f"from-{run.name}") and state.dirty
        for key, value in first_memory_remedy(run).items():
            assert get_value(state.config, key) == value
        assert state.config.training.per_device_train_batch_size < 16
        assert app.editor.form.group == "Model"
