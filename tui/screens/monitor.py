"""Watch one run, live or finished: progress, diagnosis, plots, GPUs, samples and the log.

Everything comes from the run directory on disk (tui.run_watch), so the monitor can be closed and
opened again at any time (or from another SSH session) and shows the run's whole history.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static

from runner import run_ops as ops
from runner.run_diagnosis import Finding, diagnose
from runner.run_model import RunModel
from runner.rundir import ACTIVE_STATES, RunDir

from ..markup import safe
from ..run_watch import WARNINGS_AND_ERRORS, RunWatcher, filter_pattern
from ..worker_failures import ShowsWorkerFailures
from ..widgets.diagnosis_banner import DiagnosisBanner
from ..widgets.gpu_panel import GpuPanel, Readings, read_machine
from ..widgets.log_view import LogView
from ..widgets.run_plots import RunPlots
from ..widgets.run_progress import RunProgress
from ..widgets.samples_panel import SamplesPanel

REDRAW_INTERVAL = 0.5  # seconds between looks at the clock, plots and diagnosis (log and progress update at once)
LIVE_PLOT_INTERVAL = 1.0  # while the run is live, plots and diagnosis are redrawn at most this often:
# a redraw re-plots and re-renders both plots (~10-20 ms of the event loop), which new log lines
# should not wait behind 2-20 times a second. The end of a run and the first draw are never held back.
TITLE_INTERVAL_PAUSED = 1.0  # seconds between line-count updates of a paused log's title
MACHINE_INTERVAL = 2.0  # seconds between GPU/CPU readings


@dataclass
class MachineRead(Message):
    """The machine-readings worker's result."""

    readings: Readings


@dataclass
class ControlDone(Message):
    """What stop / kill / resume answered (refusals such as "not running" included)."""

    what: str
    outcome: ops.Outcome


class MonitorScreen(ShowsWorkerFailures, Screen):
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    BINDINGS = [
        Binding("slash", "filter", "Filter"),
        Binding("w", "warnings", "Warn/err", show=False),
        Binding("x", "axis", "Step/epoch", show=False),
        Binding("p", "cycle_plot", "Plot", show=False),
        Binding("g", "toggle_side", "GPU/samples", show=False),
        Binding("s", "stop", "Stop"),
        Binding("k", "kill", "Kill", show=False),
        Binding("r", "resume", "Resume"),
        Binding("e", "clone", "Clone&edit"),
        Binding("a", "apply_fix", "Apply fix"),
        Binding("o", "output", "Output", show=False),
        Binding("c", "compare", "Compare", show=False),
        Binding("t", "try_model", "Try model", show=False),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, run: RunDir, *, probe: Callable[[], Any] | None = None,
                 machine: Callable[[], Readings] | None = None, clock: Callable[[], float] | None = None) -> None:
        """`probe` replaces the GPU probe and `machine` the whole machine reading, `clock` the time
        (tests and snapshots pass fixed ones)."""
        super().__init__()
        self.run = run
        self.probe = probe
        self.machine = machine
        self.clock = clock or time.time
        self.model = RunModel()
        self.status: dict[str, Any] = {}
        self.state = "starting"  # what the monitor shows (the trainer's word first when it says it ended)
        self.process_state = ""  # what the run's locks say (runner.registry.run_state): "" until first read
        self.config = ops.load_config(run)
        self.findings: list[Finding] = []
        self.watcher: RunWatcher | None = None
        self.loaded = False
        self._filter_label = ""
        self._drawn_version = -1
        self._plotted_at = -LIVE_PLOT_INTERVAL  # time.monotonic() of the last plot / diagnosis redraw
        self._bindings_key: tuple[Any, ...] | None = None
        self._titled_at = 0.0
        self._readings: Readings | None = None
        self.watch_errors: dict[str, str] = {}  # file of the run dir -> why the watcher cannot read it now

    # --- layout ------------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header(icon="")
        yield RunProgress(id="run-progress")
        yield Static(id="watch-errors")
        yield DiagnosisBanner(id="diagnosis")
        with Horizontal(id="monitor-top"):
            yield RunPlots(id="plots")
            with Vertical(id="monitor-side"):
                yield GpuPanel(id="gpu")
                yield SamplesPanel(id="samples")
        yield Input(placeholder="filter the log (Enter applies, Esc clears)", id="log-filter")
        yield LogView(id="log")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = f"run {self.run.name}"
        self.query_one("#log-filter").display = False
        self.query_one("#watch-errors").display = False
        self.query_one(LogView).border_title = "output.log"
        self.query_one(RunProgress).update("loading the run from disk…")
        self.watcher = RunWatcher(self.run.path, self.post_message)
        self.watcher.start()
        self.set_interval(REDRAW_INTERVAL, self.redraw)
        self.set_interval(MACHINE_INTERVAL, self.read_machine)
        self.read_machine()
        self.query_one(LogView).focus()

    def on_unmount(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()

    # --- updates from disk -------------------------------------------------------------------------------
    def on_run_watcher_changed(self, message: RunWatcher.Changed) -> None:
        watcher = self.watcher
        if watcher is None:
            return
        update = watcher.take()
        if not self.loaded and watcher.loaded.is_set():
            self.loaded = True
            self.model = watcher.model  # folded by the thread until now; ours from here on
        before = self.model.terminal
        if self.loaded and update.events:
            self.model.fold(update.events)
        if update.status is not None:
            self.status = update.status
        log = self.query_one(LogView)
        replaced = update.reset or update.filter_changed or log.index is not watcher.index
        if replaced:
            active = watcher.filter if watcher.filter is not None and watcher.filter.complete else None
            log.show(watcher.index, active, update.shift)
        else:
            log.grew()
        self.refresh_state()
        self.query_one(RunProgress).show(self.model, self.state, epochs=self._epochs())
        self.update_log_title(force=replaced)
        ended = before is None and self.model.terminal is not None and bool(update.events)
        if ended:
            self.app.run_ends.announce(self.app, self.run, self.model.state)
        if self._drawn_version < 0 or ended:
            self.redraw(force=True)  # the first picture and the final one are not held back

    def on_run_watcher_failed(self, message: RunWatcher.Failed) -> None:
        self.watch_errors[message.source] = message.error
        self.show_watch_errors()
        self.notify(f"{safe(message.source)}: {safe(message.error, 300)}\nTrying again while this monitor is open.",
                    title=f"Cannot read {safe(self.run.name)}", severity="warning", timeout=8)

    def on_run_watcher_recovered(self, message: RunWatcher.Recovered) -> None:
        if self.watch_errors.pop(message.source, None) is not None:
            self.show_watch_errors()
            self.notify(f"{safe(message.source)} reads again.", title=safe(self.run.name), timeout=4)

    def show_watch_errors(self) -> None:
        """One line per file the watcher cannot read now (hidden when it reads them all)."""
        box = self.query_one("#watch-errors", Static)
        box.display = bool(self.watch_errors)
        box.update("\n".join(f"[b]cannot read {safe(source)}:[/b] {safe(error, 300)} (retrying)"
                             for source, error in self.watch_errors.items()))

    def refresh_state(self) -> None:
        from runner.registry import run_state

        current = run_state(self.run, self.status or None)  # its locks decide, whatever status.json says
        self.process_state = state = current.state
        if state in ACTIVE_STATES and self.model.terminal is not None and self.model.state != "running":
            state = self.model.state  # the trainer said it ended; status.json catches up a moment later
        self.state = state
        self.sub_title = current.label if state == current.state else state
        if self.status and self.status.get("slurm"):  # a SLURM job: the scheduler's view beside it
            from runner.slurm import scheduler_line

            self.sub_title += f" · {scheduler_line(self.status)}"
        self._refresh_bindings_if_changed()

    def _refresh_bindings_if_changed(self) -> None:
        """The footer's keys depend on the state and the findings; refreshing them rebuilds the
        footer, so only when what `check_action` answers may have changed."""
        key = (self.state, self.process_state, self.model.terminal is not None and self.model.terminal.get("type"),
               any(f.changes for f in self.findings), self.model.last_checkpoint is not None)
        if key != self._bindings_key:
            self._bindings_key = key
            self.refresh_bindings()

    def redraw(self, force: bool = False) -> None:
        """Plots, diagnosis, samples and the live clock; only what changed since the last time, and
        while the run is live at most every LIVE_PLOT_INTERVAL (`force`: now)."""
        if not self.loaded:
            return
        self.update_log_title(force=False)  # a paused view's title catches up here
        live = self.state in ACTIVE_STATES
        if live or self.process_state in ACTIVE_STATES:  # ended, says the trainer; its processes may be exiting
            self.refresh_state()
        if live:
            self.query_one(RunProgress).show(self.model, self.state, now=self.clock(), epochs=self._epochs())
        if self.model.version == self._drawn_version:
            return
        now = time.monotonic()
        if live and not force and now - self._plotted_at < LIVE_PLOT_INTERVAL:
            return  # drawn at a later tick, with everything that arrived meanwhile
        self._plotted_at = now
        self._drawn_version = self.model.version
        self.query_one(RunPlots).show(self.model)
        self.query_one(SamplesPanel).show(self.model.samples)
        self.findings = diagnose(self.model, self.config)
        self.query_one(DiagnosisBanner).show(self.findings)
        self._refresh_bindings_if_changed()
        if self._readings is not None:
            self.query_one(GpuPanel).show(self._readings, self._estimate())

    def update_log_title(self, force: bool = True) -> None:
        """The log's border title. Unforced (a new batch) while the view is paused, at most once a
        second: a new title repaints the whole view, and a paused view's rows have not changed."""
        log = self.query_one(LogView)
        now = time.monotonic()
        if not force and not log.following and now - self._titled_at < TITLE_INTERVAL_PAUSED:
            return
        self._titled_at = now
        watcher = self.watcher
        lines = watcher.index.lines if watcher is not None else 0
        title = f"output.log · {lines:,} lines"
        if watcher is not None and watcher.index.start > 0:
            title = f"output.log · last {lines:,} lines (indexing the rest…)"
        if watcher is not None and watcher.filter is not None:
            done = watcher.filter.complete
            title += f" · filter {self._filter_label}: " + (f"{len(watcher.filter.matches):,} match" if done else "searching…")
        title += " · following" if log.following else " · paused (End follows)"
        log.border_title = title

    @on(LogView.FollowChanged)
    def _follow_changed(self) -> None:
        self.update_log_title()

    # --- machine readings (worker thread) ----------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="machine", name="read GPUs and CPU")
    def read_machine(self) -> None:
        if self.machine is not None:
            readings = self.machine()
        else:
            from ..services import probe_gpus

            readings = read_machine(self.probe or probe_gpus, ops.run_pids(self.run))
        self.post_message(MachineRead(readings))

    def on_machine_read(self, message: MachineRead) -> None:
        self._readings = message.readings
        self.query_one(GpuPanel).show(message.readings, self._estimate())

    def _estimate(self) -> int | None:
        memory = (self.model.started or {}).get("estimated_memory") or {}
        peak = memory.get("peak_bytes") if isinstance(memory, dict) else None
        return int(peak) if peak else None

    def _epochs(self) -> float | None:
        if self.config is None or self.config.training.max_steps > 0:
            return None
        return self.config.training.num_train_epochs

    # --- log filter --------------------------------------------------------------------------------------
    def action_filter(self) -> None:
        box = self.query_one("#log-filter", Input)
        box.display = True
        box.focus()

    @on(Input.Submitted, "#log-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        self.set_filter(filter_pattern(text) if text else None, repr(text))
        self.query_one(LogView).focus()

    def action_warnings(self) -> None:
        active = self.watcher is not None and self.watcher.filter is not None
        if active and self._filter_label == "warnings/errors":
            self.set_filter(None, "")
        else:
            self.set_filter(WARNINGS_AND_ERRORS, "warnings/errors")

    def set_filter(self, pattern: str | None, label: str) -> None:
        if self.watcher is None:
            return
        self._filter_label = label
        self.watcher.set_filter(pattern)
        if pattern is None:
            self.query_one("#log-filter", Input).value = ""
            self.query_one("#log-filter").display = False
        self.update_log_title()

    def action_back(self) -> None:
        box = self.query_one("#log-filter", Input)
        if box.display or (self.watcher is not None and self.watcher.filter is not None):
            self.set_filter(None, "")
            self.query_one(LogView).focus()
            return
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    # --- plots -------------------------------------------------------------------------------------------
    def action_axis(self) -> None:
        axis = self.query_one(RunPlots).toggle_axis()
        self.query_one(RunPlots).show(self.model, force=True)
        self.notify(f"x-axis: {axis}", timeout=2)

    def action_cycle_plot(self) -> None:
        self.query_one(RunPlots).cycle()

    def action_toggle_side(self) -> None:
        self.toggle_class("-side")

    # --- run control -------------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        active = self.state in ACTIVE_STATES
        if action in ("stop", "kill"):
            return active
        if action == "resume":  # never for a finished run (nothing to resume), nor while its processes exit
            return (not active and self.process_state not in ACTIVE_STATES and self.model.state != "finished"
                    and ops.resumable(self.run))
        if action == "apply_fix":
            return any(f.changes for f in self.findings)
        if action == "output":
            return self.model.terminal is not None and self.model.terminal.get("type") == "run_finished"
        return True

    def action_stop(self) -> None:
        self._confirm("Stop run", f"Stop {self.run.name}? It saves a checkpoint first (resume later with r);\n"
                      "if it does not exit within a minute it is killed.", lambda: self.control("stop"))

    def action_kill(self) -> None:
        self._confirm("Kill run", f"Kill {self.run.name} now? No checkpoint is written; "
                      "work since the last one is lost.", lambda: self.control("kill"))

    def action_resume(self) -> None:
        self.control("resume")

    def _confirm(self, title: str, message: str, then: Callable[[], Any]) -> None:
        from .confirm import ConfirmScreen

        def answered(answer: str | None) -> None:
            if answer == "yes":
                then()

        self.app.push_screen(ConfirmScreen(title, message, [("yes", "Yes", "y"), ("cancel", "No", "n")]), answered)

    def control(self, what: str) -> None:
        if what != "resume":
            self.notify(f"{'Stopping' if what == 'stop' else 'Killing'} {safe(self.run.name)}…", timeout=3)
        self.run_control(what)

    @work(thread=True, exit_on_error=False, group="control", name="stop / kill / resume the run")
    def run_control(self, what: str) -> None:
        if what == "resume":
            outcome = ops.resume(self.run)  # the same function, and checks, as `tunedeck resume`
        else:
            outcome = ops.stop(self.run, kill=what == "kill")
        self.post_message(ControlDone(what, outcome))

    def on_control_done(self, message: ControlDone) -> None:
        self.notify(safe(message.outcome.message, 600), title=message.what.capitalize(),
                    severity="information" if message.outcome.ok else "warning")

    async def action_clone(self) -> None:
        await self.open_in_editor({})

    async def action_apply_fix(self) -> None:
        finding = next((f for f in self.findings if f.changes), None)
        if finding is None:
            self.notify("No suggested change to apply.", severity="warning")
            return
        await self.open_in_editor(finding.changes, finding.title)

    async def open_in_editor(self, changes: dict[str, Any], why: str = "") -> None:
        """This run's config in the editor as a new, unsaved preset (F5 launches it as a new run)."""
        from ..state import EditorState
        from .editor import EditorScreen

        if self.config is None:
            self.notify(f"Cannot read {self.run.config}", severity="error")
            return
        name = f"{self.status.get('preset') or 'run'}-from-{self.run.name}"
        state = EditorState(config=self.config, baseline=self.config, source=f"run:{self.run.path}", name=name)
        refused = {k: r for k, v in changes.items() if (r := state.set_value(k, v))}
        editor = next((s for s in self.app.screen_stack if isinstance(s, EditorScreen)), None)
        if editor is None:
            self.notify("The editor is not open.", severity="error")
            return
        while self.app.screen is not editor:
            self.app.pop_screen()
        await editor.replace_state(state)
        applied = ", ".join(f"{k} = {v!r}" for k, v in changes.items() if k not in refused)
        self.app.notify((f"{why}: {applied}. " if applied else "") + "Press F5 to launch it as a new run.",
                        title=f"Editing a copy of {self.run.name}", timeout=8)
        if refused:
            self.app.notify("\n".join(f"{k}: {r}" for k, r in refused.items()), title="Some changes were refused",
                            severity="error")

    def action_output(self) -> None:
        terminal = self.model.terminal or {}
        path = terminal.get("merged_path") or terminal.get("final_path") or str(self.run.final)
        self.app.copy_to_clipboard(path)
        self.notify(f"{path}\n(copied to the clipboard)", title="Final output", timeout=10)

    def action_try_model(self) -> None:
        from .try_screen import TryScreen

        self.app.push_screen(TryScreen(self.run))  # it says so itself when the run has no saved model yet

    def action_compare(self) -> None:
        from .runs import RunsScreen

        self.app.push_screen(RunsScreen(compare_with=self.run))
