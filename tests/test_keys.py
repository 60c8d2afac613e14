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


async def until(pilot, condition, what: str, timeout: float = 60.0) -> None:
    from fixtures.monitor_app import wait_for

    await wait_for(pilot, condition, timeout=timeout, what=what)


async def opens(pilot, key: str, screen_type: type, timeout: float = 60.0):
    """Press `key` and wait for `screen_type` on top; it."""
    await pilot.press(key)
    await until(pilot, lambda: isinstance(pilot.app.screen, screen_type) and pilot.app.screen.is_mounted,
                f"{key} to open {screen_type.__name__}", timeout)
    return pilot.app.screen


async def press_and_back(pilot, key: str, screen_type: type) -> None:
    """Press `key`: `screen_type` opens over the editor; Escape closes it again."""
    await opens(pilot, key, screen_type)
    await opens(pilot, "escape", EditorScreen)


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
        help_screen = await opens(pilot, "f1", HelpScreen)
        assert help_screen._spec.key == "training.max_steps"  # the focused field
        await opens(pilot, "escape", EditorScreen)


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
        await until(pilot, lambda: app.editor.state.dirty, "the edit")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not app.editor.state.dirty, "ctrl+s saved")
    assert presets.load(user_preset).config.training.seed == 7


async def test_f6_applies_the_first_memory_suggestion() -> None:
    app = app_on("lora-1b")  # the CPU demo gets no memory suggestion: nothing a CPU could use (test_remedies)
    async with app.run_test(size=SIZE) as pilot:
        await settle_editor(pilot)
        estimate = app.editor.estimate
        assert estimate is not None and estimate.suggestions, "lora-1b on a 24 GB target has suggestions"
        changes = estimate.suggestions[0].changes
        from runner.schema import get_value

        await pilot.press("f6")
        await until(pilot, lambda: all(get_value(app.editor.state.config, k) == v for k, v in changes.items()),
                    "F6's suggestion applied")
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
        from tui.screens.try_screen import TryScreen

        await pilot.press("t")  # try the selected run's model (this one has none saved: the screen says so)
        await wait_for(pilot, lambda: isinstance(app.screen, TryScreen) and app.screen.run.path == runs.selected().path,
                       what="the Try screen")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is runs, what="back from the Try screen")
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
        await until(pilot, lambda: "final" in app.clipboard, "o: the final output's path copied")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.compare_with is not None,
                       what="pick a run to compare with")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is monitor, what="back on the monitor")
        await pilot.press("e")  # clone & edit: the run's config, in the editor, as a new unsaved preset
        await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen), what="the editor")
        assert app.editor.state.config.training.max_steps == presets.load("demo").config.training.max_steps


# --- the other screens' keys --------------------------------------------------------------------------------

async def test_f7_and_f8_apply_the_second_and_third_memory_suggestion() -> None:
    from runner.gpu import GpuInfo, GpuReport
    from runner.schema import get_value

    small = GpuInfo(index=0, name="NVIDIA small 8GB", total_bytes=8 * 1024**3, free_bytes=8 * 1024**3, used_bytes=0)
    app = TunedeckApp(state_from(presets.load("full-small")), probe=lambda: GpuReport(True, "", "550", [small]))
    async with app.run_test(size=SIZE) as pilot:
        await settle_editor(pilot)
        for index, key in ((2, "f8"), (1, "f7")):  # a full fine-tune on 8 GB: several ways to fit
            estimate = app.editor.estimate
            assert estimate is not None and len(estimate.suggestions) > index, estimate and estimate.suggestions
            changes = estimate.suggestions[index].changes
            assert any(get_value(app.editor.state.config, k) != v for k, v in changes.items())
            await pilot.press(key)
            await until(pilot, lambda: all(get_value(app.editor.state.config, k) == v for k, v in changes.items()),
                        f"{key}: suggestion {index + 1} applied")
            await settle_editor(pilot)
        assert app.editor.state.dirty


@pytest.fixture
def this_checkout(monkeypatch) -> None:
    """Subprocesses the screens start (the data preview) import the project from this checkout."""
    from tests.conftest import ROOT

    monkeypatch.setenv("PYTHONPATH", str(ROOT))


async def test_f10_opens_the_data_screen_and_its_keys_work(this_checkout) -> None:
    from textual.widgets import Static

    from tui.screens.data_screen import DataScreen

    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        await settle_editor(pilot)
        await opens(pilot, "f10", DataScreen)
        screen = app.screen
        await until(pilot, lambda: screen.result is not None, "the data preview", timeout=300)
        examples = screen.query_one("#data-examples", Static)
        shown = examples.render().plain.count("Instruction")
        assert "‹" not in examples.render().plain
        await pilot.press("i")
        assert "‹" in examples.render().plain  # token ids on demand
        await pilot.press("i")
        assert "‹" not in examples.render().plain
        first = screen.result
        await pilot.press("plus")  # five more examples: loaded again
        await until(pilot, lambda: screen.result is not first, "more examples", timeout=300)
        assert examples.render().plain.count("Instruction") > shown
        second = screen.result
        await pilot.press("r")
        assert "reloading" in str(screen.query_one("#data-summary", Static).render())
        await until(pilot, lambda: screen.result is not second, "the reloaded preview", timeout=300)
        await opens(pilot, "q", EditorScreen)
        await opens(pilot, "f10", DataScreen)
        await opens(pilot, "escape", EditorScreen)


async def test_the_changes_screen_reverts_resets_and_closes() -> None:
    from textual.widgets import DataTable

    from runner.schema import FIELDS_BY_KEY

    demo = presets.load("demo").config
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        await settle_editor(pilot)

        async def change_and_open(key: str, text: str) -> ChangesScreen:
            await show_group(pilot, 4)  # Batch & steps
            await focus_field(pilot, key)
            await pilot.press("ctrl+u", *text)
            await pilot.pause()
            await opens(pilot, "f3", ChangesScreen)
            screen = app.screen
            while screen._current_key() != key:  # the cursor onto that field's row, as a user moves it
                await pilot.press("down")
            return screen

        await change_and_open("training.seed", "7")
        await pilot.press("r")  # revert to the preset's value
        await until(pilot, lambda: app.editor.state.config.training.seed == demo.training.seed, "r reverted")
        await opens(pilot, "f3", EditorScreen)

        await change_and_open("training.seed", "8")
        await pilot.press("enter")
        await until(pilot, lambda: app.editor.state.config.training.seed == demo.training.seed, "Enter reverted")
        await opens(pilot, "escape", EditorScreen)

        key = "training.per_device_train_batch_size"  # the demo sets it; d puts the schema's default back
        default = FIELDS_BY_KEY[key].default
        assert demo.training.per_device_train_batch_size != default
        screen = await change_and_open(key, "3")
        await pilot.press("d")
        await until(pilot, lambda: app.editor.state.config.training.per_device_train_batch_size == default, "d reset")
        assert screen.query_one(DataTable).row_count > 0
        await pilot.press("escape")


async def test_the_full_help_closes_on_escape_f1_and_q() -> None:
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        await settle_editor(pilot)
        await show_group(pilot, 4)
        for key in ("escape", "f1", "q"):
            await focus_field(pilot, "training.max_steps")
            await opens(pilot, "f1", HelpScreen)
            assert "max_steps" in str(app.screen.query_one("#full-help").render())
            await pilot.press(key)
            await until(pilot, lambda: isinstance(app.screen, EditorScreen), f"{key} closes the full help")


async def test_the_open_dialog_cancels_on_escape_and_opens_the_chosen_preset() -> None:
    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        await settle_editor(pilot)
        await opens(pilot, "ctrl+o", OpenScreen)
        await opens(pilot, "escape", EditorScreen)
        assert app.editor.state.name == "demo"


async def test_the_save_as_dialog_cancels_on_escape_and_writes_nothing(tmp_path: Path) -> None:
    from runner.paths import user_presets_dir

    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        await settle_editor(pilot)
        await opens(pilot, "f2", SaveAsScreen)
        await opens(pilot, "escape", EditorScreen)
    assert not user_presets_dir().exists() or not any(user_presets_dir().iterdir())


async def test_the_problems_screen_closes_on_escape_and_enter() -> None:
    from tui.screens.problems_screen import ProblemsScreen

    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        await settle_editor(pilot)
        await show_group(pilot, 1)  # Data
        await focus_field(pilot, "data.eval_split")
        await pilot.press("ctrl+u", "2")  # no eval fraction can be 2: launching is refused with the problem shown
        await pilot.pause()
        for key in ("escape", "enter"):
            await opens(pilot, "f5", ProblemsScreen)
            assert "Eval fraction" in str(app.screen.query_one("#refused-problems").render())
            await pilot.press(key)
            await until(pilot, lambda: isinstance(app.screen, EditorScreen), f"{key} closes the problems")


async def test_the_launch_dialog_enter_launches_and_the_monitor_follows_the_run(tmp_path: Path, monkeypatch) -> None:
    from fixtures import fake_runner
    from fixtures.monitor_app import MonitorTestApp
    from runner.registry import list_runs
    from runner.stop import stop
    from tui.screens.monitor import MonitorScreen

    fake_runner.use_fake_trainer(monkeypatch)  # the real launcher and supervisor; a stand-in trainer
    app = MonitorTestApp(tmp_path / "runs")
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle_editor(pilot)
            await opens(pilot, "f5", LaunchDialog)
            dialog = app.screen
            await until(pilot, lambda: dialog.plan is not None and not dialog.errors, "the launch plan", timeout=300)
            await opens(pilot, "enter", MonitorScreen)
            monitor = app.screen
            await until(pilot, lambda: monitor.model.step >= 2, "the new run's first steps")
            assert monitor.run.path.resolve().parent == (tmp_path / "runs").resolve()  # the run was created there
    finally:
        for info in list_runs(tmp_path / "runs"):
            stop(info.run, grace=5)


async def test_the_launch_dialog_d_opens_the_data_screen(this_checkout) -> None:
    from tui.screens.data_screen import DataScreen

    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        await settle_editor(pilot)
        await opens(pilot, "f5", LaunchDialog)
        await opens(pilot, "d", DataScreen)
        await opens(pilot, "escape", LaunchDialog)
        await opens(pilot, "escape", EditorScreen)


async def test_compare_x_switches_the_axis_and_escape_goes_back(tmp_path: Path) -> None:
    from datetime import datetime

    from fixtures.monitor_app import MonitorTestApp, history_run
    from tui.screens.compare import CompareScreen

    root = tmp_path / "runs"
    a = history_run(root, steps=60, stamp=datetime(2024, 1, 2, 3, 4, 5))
    b = history_run(root, steps=80, stamp=datetime(2024, 1, 3, 3, 4, 5))
    app = MonitorTestApp(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle_editor(pilot)
        app.push_screen(CompareScreen(a, b))
        await until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.models is not None, "compare")
        screen = app.screen
        plot = screen.query_one("#compare-plot")
        step_plot = plot.plt.build()
        await pilot.press("x")
        assert screen.x_axis == "epoch"
        await until(pilot, lambda: plot.plt.build() != step_plot, "the plot redrawn per epoch")
        await pilot.press("x")
        assert screen.x_axis == "step"
        await opens(pilot, "escape", EditorScreen)


async def test_the_log_keys_scroll_page_and_follow(tmp_path: Path) -> None:
    from fixtures.monitor_app import MonitorTestApp, history_run
    from tui.screens.monitor import MonitorScreen
    from tui.widgets.log_view import LogView

    run = history_run(tmp_path / "runs", steps=200)
    with open(run.log, "a", encoding="utf-8") as log:  # one line wider than any screen: something to scroll to
        log.write("wide " + "x" * 400 + "\n")
    app = MonitorTestApp(tmp_path / "runs", attach=run)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.loaded, "the monitor")
        log = app.screen.query_one(LogView)
        await until(pilot, lambda: log.total > 500 and log.scroll_offset.y == log.max_scroll_y, "the log at its end")
        assert log.following and log.has_focus
        await pilot.press("home")
        await until(pilot, lambda: log.scroll_offset.y == 0, "home: the top")
        assert not log.following
        await pilot.press("down")
        await until(pilot, lambda: log.scroll_offset.y == 1, "down: one line")
        await pilot.press("up")
        await until(pilot, lambda: log.scroll_offset.y == 0, "up: one line back")
        await pilot.press("pagedown")
        await until(pilot, lambda: log.scroll_offset.y >= log.size.height - 2, "pagedown: a page")
        paged = log.scroll_offset.y
        await pilot.press("pageup")
        await until(pilot, lambda: log.scroll_offset.y < paged, "pageup: a page back")
        await pilot.press("right")
        await until(pilot, lambda: log.scroll_offset.x > 0, "right: scrolled sideways")
        await pilot.press("left")
        await until(pilot, lambda: log.scroll_offset.x == 0, "left: back")
        await pilot.press("end")
        await until(pilot, lambda: log.following and log.scroll_offset.y == log.max_scroll_y, "end: following again")


async def test_try_keys_without_a_saved_model(tmp_path: Path) -> None:
    """A run with no saved model yet: the Try screen says so, and its keys still do what they say."""
    from textual.widgets import Input

    from fixtures.monitor_app import MonitorTestApp, history_run
    from runner.paths import user_presets_dir
    from tui.screens.monitor import MonitorScreen
    from tui.screens.try_screen import TryScreen

    run = history_run(tmp_path / "runs", steps=40)
    app = MonitorTestApp(tmp_path / "runs", attach=run)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.loaded, "the monitor")
        await opens(pilot, "t", TryScreen)
        screen = app.screen
        await until(pilot, lambda: screen.fatal is not None, "the reason it cannot generate")
        assert "no saved model yet" in str(screen.query_one("#try-status").render())
        prompt = screen.query_one("#try-prompt", Input)
        prompts = screen.config.generation.prompts
        assert len(prompts) >= 2, "the demo has several sample prompts"
        await pilot.press("f8")
        assert screen.prompt_index == 1 and prompt.value == prompts[1]
        await pilot.press("f8")
        assert prompt.value == prompts[2 % len(prompts)]
        titles: list[str] = []
        notify = app.notify
        app.notify = lambda message, *args, **kwargs: titles.append(kwargs.get("title", "")) or notify(message, *args,
                                                                                                      **kwargs)
        await pilot.press("f5")
        await until(pilot, lambda: "Cannot generate" in titles, "F5: why not")
        assert not screen.columns
        await pilot.press("f7")
        assert screen.sweep_key == "generation.temperature" and screen.query_one("#try-sweep").display
        await pilot.press("f6")  # no model: nothing to compare with, and the sweep is off
        assert screen.compare_with is None and screen.sweep_key is None
        await pilot.press("f4")  # no saved checkpoints: the first column stays as it is
        assert screen.primary is None
        await pilot.press("ctrl+s")
        await until(pilot, lambda: screen.saved_path is not None, "ctrl+s: the settings saved as a preset")
        assert screen.saved_path.parent == user_presets_dir() and presets.load(screen.saved_path).ok
        await opens(pilot, "escape", MonitorScreen)


# --- the monitor on a live run: stop, kill, resume, apply a fix --------------------------------------------
@pytest.fixture
def live_run(tmp_path: Path, monkeypatch):
    """A run started by the real launcher and supervisor with the stand-in trainer (a spike in the
    gradient norm every 25 steps, so the diagnosis has a fix to offer; 3 s to save its checkpoint
    after SIGTERM, so a graceful stop and a kill end differently); stopped at teardown."""
    from fixtures import fake_runner
    from runner import launch
    from runner.registry import effective_state
    from runner.stop import stop

    fake_runner.use_fake_trainer(monkeypatch)
    run = fake_runner.prepare(tmp_path / "runs", scenario="spike", steps=2000, step_interval=0.05, lines_per_step=2,
                              stop_delay=3.0)
    launch.start(run)
    yield run
    if effective_state(run) in ("starting", "running", "stopping"):
        stop(run, grace=5)


def alive(pids: list[int]) -> list[int]:
    import psutil

    return [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


async def test_every_monitor_key_on_a_live_run(live_run) -> None:
    from fixtures.monitor_app import MonitorTestApp
    from runner.registry import run_pids
    from tui.screens.confirm import ConfirmScreen
    from tui.screens.monitor import MonitorScreen

    app = MonitorTestApp(live_run.path.parent, attach=live_run)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.model.step >= 3, "first steps")
        monitor = app.screen
        await until(pilot, lambda: monitor.state == "running", "running")
        pids = run_pids(live_run.path)
        assert alive(pids), "the supervisor and the trainer"
        assert monitor.check_action("resume", ()) is False  # nothing to resume while it runs

        await opens(pilot, "s", ConfirmScreen)
        await pilot.press("n")
        await until(pilot, lambda: app.screen is monitor, "back on the monitor")
        await opens(pilot, "k", ConfirmScreen)  # and Esc answers the kill question "cancel"
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is monitor, "back on the monitor")
        step = monitor.model.step
        await until(pilot, lambda: monitor.model.step > step, "still training after No and Esc")
        assert alive(pids) == pids

        await opens(pilot, "s", ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: monitor.state == "stopped", "s: stopped")
        await until(pilot, lambda: not alive(pids), "every process of the run gone")
        stopped_at = live_run.latest_checkpoint()
        assert stopped_at is not None  # graceful: it saved a checkpoint first
        await until(pilot, lambda: (monitor.model.terminal or {}).get("type") == "run_stopped", "the stop event")
        assert "SIGTERM" in monitor.model.terminal["reason"]  # the trainer stopped itself
        await pilot.press("s")  # a stopped run has nothing to stop: no question
        assert app.screen is monitor

        await until(pilot, lambda: monitor.check_action("resume", ()) is True, "resume offered")
        await pilot.press("r")
        await until(pilot, lambda: monitor.model.launches == 2 and monitor.state == "running", "r: resumed")
        assert monitor.model.started["resumed_from"] == stopped_at.name
        resumed_step = monitor.model.step
        await until(pilot, lambda: monitor.model.step > resumed_step + 2, "the resumed run trains on")
        pids = run_pids(live_run.path)
        assert alive(pids)

        await opens(pilot, "k", ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: monitor.state in ("stopped", "failed"), "k: ended")
        await until(pilot, lambda: not alive(pids), "every process of the run killed")
        await until(pilot, lambda: monitor.model.launches == 2 and monitor.model.terminal is not None, "the kill recorded")
        assert "SIGTERM" not in monitor.model.terminal.get("reason", "")  # killed, not stopped gracefully

        await until(pilot, lambda: any(f.changes for f in monitor.findings), "the diagnosis offers a fix")
        finding = next(f for f in monitor.findings if f.changes)
        await opens(pilot, "a", EditorScreen)
        from runner.schema import get_value

        for key, value in finding.changes.items():
            assert get_value(app.editor.state.config, key) == value
        assert app.editor.state.dirty and app.editor.state.path is None


# --- no binding without a test ------------------------------------------------------------------------------
# (class, key) -> the test that presses it and asserts its effect: a test of this module, or
# "file.py::test" for keys pressed where the screen needs a trained model or a real simulation.
SIMULATE = "test_estimate_simulate.py::test_editor_simulates_on_ctrl_e_and_shows_it_in_the_gauge_and_the_launch_dialog"
TRY_MODEL = "test_try.py::test_try_screen_streams_compares_and_sweeps"
KEY_TESTS: dict[str, dict[str, str]] = {
    "TunedeckApp": {"f9": "test_every_editor_key_that_opens_a_screen_opens_it"},
    "EditorScreen": {
        "ctrl+s": "test_ctrl_s_saves_a_user_preset_in_place",
        "f2": "test_the_save_as_dialog_cancels_on_escape_and_writes_nothing",
        "ctrl+o": "test_the_open_dialog_cancels_on_escape_and_opens_the_chosen_preset",
        "f1": "test_f4_hides_and_shows_the_help_panel_and_f1_opens_the_full_help",
        "f3": "test_the_changes_screen_reverts_resets_and_closes",
        "f4": "test_f4_hides_and_shows_the_help_panel_and_f1_opens_the_full_help",
        "f5": "test_the_launch_dialog_enter_launches_and_the_monitor_follows_the_run",
        "ctrl+e": SIMULATE,
        "f10": "test_f10_opens_the_data_screen_and_its_keys_work",
        "escape": "test_tab_into_the_form_and_shift_tab_or_esc_back_move_the_help_with_the_focus",
        "f6": "test_f6_applies_the_first_memory_suggestion",
        "f7": "test_f7_and_f8_apply_the_second_and_third_memory_suggestion",
        "f8": "test_f7_and_f8_apply_the_second_and_third_memory_suggestion",
    },
    "ChangesScreen": {k: "test_the_changes_screen_reverts_resets_and_closes" for k in ("r", "enter", "d", "escape", "f3")},
    "HelpScreen": {k: "test_the_full_help_closes_on_escape_f1_and_q" for k in ("escape", "f1", "q")},
    "OpenScreen": {"escape": "test_the_open_dialog_cancels_on_escape_and_opens_the_chosen_preset"},
    "SaveAsScreen": {"escape": "test_the_save_as_dialog_cancels_on_escape_and_writes_nothing"},
    "ProblemsScreen": {k: "test_the_problems_screen_closes_on_escape_and_enter" for k in ("escape", "enter")},
    "LaunchDialog": {"escape": "test_the_launch_dialog_d_opens_the_data_screen",
                     "enter": "test_the_launch_dialog_enter_launches_and_the_monitor_follows_the_run",
                     "d": "test_the_launch_dialog_d_opens_the_data_screen"},
    "DataScreen": {k: "test_f10_opens_the_data_screen_and_its_keys_work" for k in ("escape", "q", "i", "r", "plus")},
    "CompareScreen": {k: "test_compare_x_switches_the_axis_and_escape_goes_back" for k in ("escape", "x")},
    "RunsScreen": {k: "test_every_runs_screen_key" for k in ("enter", "m", "c", "t", "e", "escape")},
    "MonitorScreen": {
        **{k: "test_every_monitor_key_on_a_finished_run" for k in ("slash", "w", "x", "p", "g", "e", "o", "c", "escape")},
        **{k: "test_every_monitor_key_on_a_live_run" for k in ("s", "k", "r", "a")},  # and, slow, on a real run:
        # test_s_r_and_k_on_a_real_detached_demo_run
        "t": "test_try_keys_without_a_saved_model",
    },
    "LogView": {k: "test_the_log_keys_scroll_page_and_follow"
                for k in ("end", "home", "up", "down", "pageup", "pagedown", "left", "right")},
    "TryScreen": {
        **{k: "test_try_keys_without_a_saved_model" for k in ("f5", "f7", "f8", "ctrl+s", "escape")},
        "f4": TRY_MODEL,  # cycling checkpoints and comparisons needs a model with checkpoints
        "f6": TRY_MODEL,
    },
}


def every_binding() -> set[tuple[str, str]]:
    """(class name, key) for every BINDINGS entry of every class in tui/, each of a binding's keys."""
    import importlib
    import inspect
    import pkgutil

    import tui
    from textual.binding import Binding

    found: set[tuple[str, str]] = set()
    for info in pkgutil.walk_packages(tui.__path__, "tui."):
        module = importlib.import_module(info.name)
        for cls in vars(module).values():
            if inspect.isclass(cls) and cls.__module__ == module.__name__ and "BINDINGS" in vars(cls):
                for binding in cls.BINDINGS:
                    binding = binding if isinstance(binding, Binding) else Binding(*binding)
                    found |= {(cls.__name__, key.strip()) for key in binding.key.split(",")}
    return found


def test_every_key_binding_in_every_screen_has_a_test_that_presses_it() -> None:
    import inspect
    import re

    bindings = every_binding()
    tabled = {(cls, key) for cls, keys in KEY_TESTS.items() for key in keys}
    assert bindings - tabled == set(), "bindings with no test: press them in a test and add them to KEY_TESTS"
    assert tabled - bindings == set(), "KEY_TESTS names keys no screen binds any more"
    here = Path(__file__).parent
    for cls, keys in KEY_TESTS.items():
        for key, test in keys.items():
            file, _, name = test.rpartition("::")
            if file:
                source = (here / file).read_text()
                match = re.search(rf"^(async )?def {name}\(.*?(?=^(async )?def |\Z)", source, re.S | re.M)
                assert match, f"{cls} {key}: {test} does not exist"
                body = match.group(0)
            else:
                assert name in globals(), f"{cls} {key}: {name} does not exist"
                body = inspect.getsource(globals()[name])
            assert f'"{key}"' in body, f"{cls} {key}: {test} never presses {key!r}"


@pytest.mark.slow
async def test_s_r_and_k_on_a_real_detached_demo_run(tmp_path: Path) -> None:
    """The same keys on a real `tunedeck run demo --detach` (accelerate launch, the real trainer on CPU):
    s checkpoints and stops it, r resumes it from that checkpoint, k kills it; no process is left."""
    import os
    import signal

    from fixtures.monitor_app import MonitorTestApp
    from fixtures.processes import cli, run_dir_of
    from runner.registry import run_pids
    from tests.conftest import python_env
    from tui.screens.confirm import ConfirmScreen
    from tui.screens.monitor import MonitorScreen

    long = ("--set", "training.max_steps=5000", "--set", "training.logging_steps=1", "--set",
            "training.eval_strategy='no'", "--set", "training.save_steps=100000")
    started = cli("run", "demo", "--detach", *long, env=python_env(), cwd=tmp_path, timeout=600)
    assert started.returncode == 0, started.stdout + started.stderr
    run = run_dir_of(started)
    try:
        app = MonitorTestApp(run.path.parent, attach=run)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.model.step >= 2,
                        "the real run's first steps", timeout=600)
            monitor = app.screen
            pids = run_pids(run.path)
            await opens(pilot, "s", ConfirmScreen)
            await pilot.press("y")
            await until(pilot, lambda: monitor.state == "stopped", "s: stopped", timeout=300)
            await until(pilot, lambda: not alive(pids), "the run's processes gone", timeout=120)
            checkpoint = run.latest_checkpoint()
            await until(pilot, lambda: (monitor.model.terminal or {}).get("type") == "run_stopped", "the stop event")
            assert checkpoint is not None and "SIGTERM" in monitor.model.terminal["reason"]  # graceful
            stopped_at = monitor.model.step

            await until(pilot, lambda: monitor.check_action("resume", ()) is True, "resume offered")
            await pilot.press("r")
            await until(pilot, lambda: monitor.model.launches == 2 and monitor.model.step > stopped_at,
                        "r: the resumed run trains on", timeout=600)
            assert monitor.model.started["resumed_from"] == checkpoint.name
            pids = run_pids(run.path)
            assert alive(pids)

            await opens(pilot, "k", ConfirmScreen)
            await pilot.press("y")
            await until(pilot, lambda: monitor.state not in ("starting", "running", "stopping"), "k: ended", 120)
            await until(pilot, lambda: not alive(pids), "every process of the run killed", timeout=60)
    finally:
        for pid in run_pids(run.path):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


async def test_tab_into_the_form_and_shift_tab_or_esc_back_move_the_help_with_the_focus() -> None:
    from tui.widgets.section_list import SectionList

    app = app_on()
    async with app.run_test(size=SIZE) as pilot:
        await settle_editor(pilot)
        await show_group(pilot, 4)  # Batch & steps, the focus on the section list
        assert isinstance(app.focused, SectionList) and "Sections" in help_text(app)
        await pilot.press("tab")  # into the form: the first field's help
        await until(pilot, lambda: isinstance(app.focused, Input), "a field focused")
        key = app.editor.focused_key
        assert key and key.startswith("training.")
        await until(pilot, lambda: key in help_text(app) and "Sections" not in help_text(app), "the field's help")
        await pilot.press("shift+tab")  # back on the section list: no field's help stays up
        await until(pilot, lambda: isinstance(app.focused, SectionList), "the section list focused")
        await until(pilot, lambda: "Sections" in help_text(app), "the section list's help")
        assert key not in help_text(app) and "training." not in help_text(app)
        await focus_field(pilot, "training.seed")
        assert "training.seed" in help_text(app)
        await pilot.press("escape")  # Esc in a field: back to the section list, on the group the form shows
        await until(pilot, lambda: isinstance(app.focused, SectionList), "Esc: the section list focused")
        await until(pilot, lambda: "Sections" in help_text(app) and "training." not in help_text(app),
                    "the section list's help after Esc")
        assert app.focused.highlighted == 4 and app.editor.form.group == "Batch & steps"
