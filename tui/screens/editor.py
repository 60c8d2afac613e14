"""The main screen: section list, generated form, problems, help panel, memory gauge, derived numbers.

A view over `tui.editor_model.EditorModel`: the model owns the document, what follows from it
(problems, derived numbers, estimate) and saving; this screen's widgets render the model and hand
edits to it, and its workers (harlequin style: named, `exit_on_error=False`, posting typed messages)
find what is slow to find: the preset itself, the GPUs, the example count, a simulated step.

The frame (panes, section list, keys) paints before anything heavy is imported: the preset is
loaded, and pydantic, the schema, validation and the estimator imported, in a worker thread just
after it; the form fills in when they are ready. So this module imports the model and runner's
schema-side modules inside the methods that run after loading, never at the top.

Every edit is validated at once (per field by the schema); the costlier follow-ups (cross-field
rules, estimate, derived numbers, labels) are shown once after a short debounce, and the autosave
draft is written a couple of seconds after the last edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.events import DescendantFocus
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import MountError
from textual.widgets import Footer, Header
from textual.worker import Worker, WorkerState

from runner.groups import GROUPS

from ..field_commands import FieldCommands
from ..help_markup import markdownish
from ..markup import safe
from ..services import NoProbe, probe_gpus
from ..widgets.derived_bar import DerivedBar
from ..widgets.help_panel import HelpPanel
from ..widgets.memory_gauge import SUGGESTION_KEYS, MemoryGauge
from ..widgets.problems_list import ProblemsList
from ..widgets.section_list import SectionList
from ..worker_failures import ShowsWorkerFailures

if TYPE_CHECKING:  # imported for real after the first frame (see the module docstring)
    from runner.problems import Problem
    from runner.schema import FieldSpec

    from ..editor_model import EditorModel
    from ..state import EditorState
    from ..widgets.field_form import FieldForm
    from ..widgets.field_row import FieldRow

RECOMPUTE_DELAY = 0.08  # seconds of quiet typing before problems, estimate and derived numbers refresh
AUTOSAVE_DELAY = 2.0  # seconds after the last edit before the draft is written
# Actions that need the preset: dimmed in the footer for the moment before it is loaded.
EDITOR_ACTIONS = frozenset({"save", "save_as", "open", "full_help", "changes", "toggle_help", "launch",
                            "apply_suggestion", "simulate"})


class EditorScreen(ShowsWorkerFailures, Screen):
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    COMMANDS = {FieldCommands}  # the command palette finds fields by name and help text
    BINDINGS = [
        Binding("ctrl+s", "save", "Save"),
        Binding("f2", "save_as", "Save as"),
        Binding("ctrl+o", "open", "Open"),
        Binding("f1", "full_help", "Help"),
        Binding("f3", "changes", "Changes"),
        Binding("f4", "toggle_help", "Help pane"),
        Binding("f5", "launch", "Launch"),
        Binding("ctrl+e", "simulate", "Simulate", show=False),  # in the gauge's help and README; keeps the footer short
        Binding("f10", "data", "Data", show=False),  # also in the command palette; kept out of a full footer
        Binding("escape", "sections", "Sections", show=False),  # from a field back to the section list
        *[Binding(key.lower(), f"apply_suggestion({i})", f"Fix {i + 1}") for i, key in enumerate(SUGGESTION_KEYS)],
    ]

    # --- what the workers report -------------------------------------------------------------------------
    @dataclass
    class PresetLoaded(Message):
        """The preset was read: `model` to edit, or, when it could not be read at all, its `problems`."""

        model: EditorModel | None
        problems: list[Problem]

    @dataclass
    class GpusProbed(Message):
        report: Any  # runner.gpu.GpuReport or tui.services.NoProbe

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, EditorScreen.GpusProbed)  # a newer report supersedes one not yet shown

    @dataclass
    class ExamplesCounted(Message):
        data: Any  # the config's data section it counted (a count for other data is stale)
        count: int | None

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, EditorScreen.ExamplesCounted)  # the newest count is the one to show

    @dataclass
    class StepSimulated(Message):
        signature: str  # memory signature of the config simulated
        line: str  # markup: the result or why it failed

    def __init__(self, state: EditorState | None = None, source: str = "demo", *,
                 load_when_shown: bool = False) -> None:
        """Show `state`, or load the preset `source` (a name or path) in a worker after the first frame.
        `load_when_shown`: the app starts on another screen; wait until the user comes here."""
        super().__init__()
        self._wait_until_shown = load_when_shown
        self._hidden_once = False
        self._filling = False  # the load / fill has been started (once: resume and first frame may both ask)
        self.model: EditorModel | None = None  # None only until loaded (ready is False)
        if state is not None:
            from ..editor_model import EditorModel

            self.model = EditorModel(state)
        self.source_was_lazy = state is None
        self.source = source
        self.focused_key: str | None = None
        self._recompute_timer: Timer | None = None
        self._autosave_timer: Timer | None = None
        self.figures_pending = False  # an edit's problems, estimate and derived numbers are not shown yet
        self.ready = False  # the form is filled and the background checks are started
        self._fix_keys = 0  # how many "Fix n" keys the footer shows

    @property
    def state(self) -> EditorState | None:
        """The document being edited (None until the preset is loaded)."""
        return self.model.state if self.model is not None else None

    @property
    def estimate(self) -> Any:
        return self.model.estimate if self.model is not None else None

    # --- layout ----------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header(icon="")
        with Horizontal(id="body"):
            yield SectionList(id="sections")
            with Vertical(id="centre"):  # the form is mounted here once the preset is loaded
                yield ProblemsList(id="problems")
            with Vertical(id="side"):
                yield HelpPanel(id="help")
                yield MemoryGauge(id="gauge")
        yield DerivedBar(id="derived")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(MemoryGauge).show_message("[dim]estimating…[/]")
        if self.model is None:
            self.query_one(ProblemsList).update(f"[dim]loading {safe(self.source)}…[/]")
        # The frame (panes, sections, keys) paints first; the form and the numbers fill in right after.
        self.call_after_refresh(self._after_first_frame)

    def _after_first_frame(self) -> None:
        if self._wait_until_shown or self._filling:
            return  # on_screen_resume starts it; or it is already started
        self._filling = True
        if self.model is None:
            self.load()
        else:
            self.call_later(self._fill)

    def on_screen_suspend(self) -> None:
        self._hidden_once = True

    def on_screen_resume(self) -> None:
        if self._wait_until_shown and self._hidden_once:  # back from the screen the app started on
            self._wait_until_shown = False
            self._after_first_frame()

    @work(thread=True, exclusive=True, group="load", name="load preset", exit_on_error=False)
    def load(self) -> None:
        """Read and validate the preset, importing what the form needs on the way (off the UI thread)."""
        from runner.problems import ConfigError

        from ..editor_model import EditorModel
        from ..widgets import field_form  # noqa: F401  # warm the form's imports for the UI thread

        try:
            model = EditorModel.load(self.source)
        except ConfigError as exc:  # an unreadable preset: an outcome, carried to the UI thread
            self.post_message(self.PresetLoaded(None, exc.problems))
            return
        model.figures  # noqa: B018  # the first recompute (and its imports) off the UI thread
        self.post_message(self.PresetLoaded(model, []))

    async def on_editor_screen_preset_loaded(self, event: PresetLoaded) -> None:
        if event.model is None:  # only an unreadable preset gets here: say why, exit non-zero
            self.app.exit(return_code=2, message="\n".join(p.format() for p in event.problems))
            return
        if self.model is None:  # (a document handed over meanwhile, e.g. a run's config, wins)
            self.model = event.model
        await self._fill()

    async def _fill(self) -> None:
        from ..widgets.field_form import FieldForm

        centre = self.query_one("#centre")
        try:
            await centre.mount(FieldForm(id="form"), before=0)
            picked = self.query_one(SectionList).highlighted  # the user may have moved while it loaded
            shown = self.state
            await self.form.show_group(GROUPS[picked or 0], shown)
            if self.state is not shown:  # another preset was opened meanwhile
                await self.form.show_group(GROUPS[picked or 0], self.state)
        except (MountError, NoMatches):
            if self.is_attached and centre.is_attached:
                raise
            return  # the user quit while the form was being built: nothing left to fill
        self.recompute()
        self.probe()
        self.count()
        self.ready = True
        if self.source_was_lazy:
            self.refresh_bindings()  # the keys dimmed while loading light up
        self.app.editor_ready(self)

    @property
    def form(self) -> FieldForm:
        from ..widgets.field_form import FieldForm

        return self.query_one(FieldForm)

    # --- workers: slow or blocking calls off the UI thread ----------------------------------------------
    @work(thread=True, exclusive=True, group="probe", name="probe GPUs", exit_on_error=False)
    def probe(self) -> None:
        self.post_message(self.GpusProbed((self.app.probe or probe_gpus)()))

    def on_editor_screen_gpus_probed(self, event: GpusProbed) -> None:
        self.model.set_gpu_report(event.report)
        self.query_one(MemoryGauge).show_target_picker(not self.model.has_gpus)
        self.recompute()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """ShowsWorkerFailures tells the user; here the panes that waited for the worker stop waiting."""
        if event.state != WorkerState.ERROR:
            return
        if event.worker.name == "probe GPUs" and self.model is not None:
            self.post_message(self.GpusProbed(NoProbe(reason=f"the GPU probe failed: {event.worker.error}")))
        elif event.worker.name == "load preset":
            self.query_one(ProblemsList).update(f"[$error]Could not load {safe(self.source)}:[/] "
                                                f"{safe(event.worker.error)}")
            self.query_one(MemoryGauge).show_message("[dim]no preset loaded[/]")

    @work(thread=True, exclusive=True, group="count", name="count examples", exit_on_error=False)
    def count(self) -> None:
        model = self.model
        data = model.state.config.data
        self.post_message(self.ExamplesCounted(data, model.count_examples()))

    def on_editor_screen_examples_counted(self, event: ExamplesCounted) -> None:
        if event.data != self.model.state.config.data:
            return  # counted for data since changed; the count started by that change follows
        self.model.set_num_examples(event.count)
        self.recompute()

    @work(thread=True, exclusive=True, group="autosave", name="write draft", exit_on_error=False)
    def write_draft(self) -> None:
        self.model.write_draft()

    # --- edits -------------------------------------------------------------------------------------------
    async def on_field_row_edited(self, event: FieldRow.Edited) -> None:
        event.stop()
        model = self.model
        if model.is_echo(event.key, event.value, event.error):
            return  # widgets echo their initial value on mount; nothing was edited
        if event.error:
            model.mark_invalid(event.key, event.text, event.error)
            event.row.show_error(event.error)
        else:
            event.row.show_error(model.set_value(event.key, event.value, event.text))
        await self.after_edit(count_again=event.key.startswith("data."), focus_key=event.key)

    async def set_field(self, key: str, value: Any) -> str | None:
        """Set a field from outside the form (revert, suggestion); the form row follows."""
        reason = self.model.set_value(key, value)
        await self._field_set_elsewhere(key, reason)
        return reason

    async def _field_set_elsewhere(self, key: str, reason: str | None) -> None:
        from runner.schema import get_value

        row = self.form.row(key) if self.ready else None
        if row is not None and reason is None:
            row.set_value(get_value(self.state.config, key))
        await self.after_edit(count_again=key.startswith("data."))

    async def after_edit(self, count_again: bool = False, focus_key: str | None = None) -> None:
        if self.ready:
            await self.form.refresh_applicability(self.state, focus_key)
        if count_again:
            self.count()
        self.schedule_recompute()
        if self._autosave_timer is not None:
            self._autosave_timer.stop()
        self._autosave_timer = self.set_timer(AUTOSAVE_DELAY, self.write_draft)

    def schedule_recompute(self) -> None:
        self.figures_pending = True
        if self._recompute_timer is not None:
            self._recompute_timer.stop()
        self._recompute_timer = self.set_timer(RECOMPUTE_DELAY, self.recompute)

    # --- showing what follows from the config ------------------------------------------------------------
    def blocking_problems(self) -> list[Problem]:
        return self.model.blocking_problems

    def recompute(self) -> None:
        """Show the model's figures: problems, error marks, derived numbers, gauge, changed marks, title."""
        if self.model is None or not self.is_attached:
            return  # nothing loaded yet, or the screen is gone (a timer fired late)
        model = self.model
        self.figures_pending = False
        self.query_one(ProblemsList).show(model.problems)
        self.query_one(SectionList).flag(model.error_groups)
        self.query_one(DerivedBar).show(model.derived, model.invalid_note(with_reason=False))
        self.query_one(MemoryGauge).show_gauge(model.gauge, model.gpu_report, model.invalid_names(), model.suggestions)
        self._sync_fix_keys()
        if self.ready:
            self.form.refresh_changed(model.changed_keys)
        self.sub_title = model.title()
        self.refresh_help()

    def _sync_fix_keys(self) -> None:
        """The Fix keys appear only while there are suggestions to apply. The footer rebuilds
        itself on every refresh_bindings, so refresh only when their number changes."""
        fixes = len(self.model.suggestions)
        if fixes != self._fix_keys:
            self._fix_keys = fixes
            self.refresh_bindings()

    def summarise(self, config) -> str:
        """A one-line estimate for another config (the Open picker), against this machine's budget."""
        summary = self.model.summarise(config) if self.model is not None else None
        if summary is None:
            return ""
        peak_gib, verdict = summary
        if verdict == "no estimate":
            return "[dim]no estimate[/]"
        colour = {"fits": "$success", "tight": "$warning"}.get(verdict, "$error")
        return f"[{colour}]~{peak_gib:.1f} GiB, {verdict}[/]"

    # --- help follows focus --------------------------------------------------------------------------------
    @on(DescendantFocus)
    def _focus_moved(self, event: DescendantFocus) -> None:
        if self.model is None:
            return
        from ..widgets.field_row import FieldRow

        row = next((n for n in event.widget.ancestors_with_self if isinstance(n, FieldRow)), None)
        self.focused_key = row.spec.key if row is not None else None
        self.refresh_help(event.widget)

    def refresh_help(self, widget=None) -> None:
        panel = self.query_one(HelpPanel)
        spec = self.focused_spec()
        if spec is not None:
            from runner.schema import get_value

            panel.show_field(spec, get_value(self.state.config, spec.key), self.model.facts(),
                             self.model.problems_for(spec.key))
            return
        widget = widget or self.focused
        for node in (widget.ancestors_with_self if widget is not None else ()):
            text = getattr(type(node), "HELP", None)
            if text and type(node).__module__.startswith("tui."):
                panel.show_text(markdownish(text))
                return

    @on(SectionList.Picked)
    async def _picked(self, event: SectionList.Picked) -> None:
        if not self.ready:
            return  # the form shows the first group once the preset is loaded
        form = self.form
        if form.group != event.group:
            await form.show_group(event.group, self.state)

    @on(MemoryGauge.TargetChanged)
    def _target(self, event: MemoryGauge.TargetChanged) -> None:
        self.model.set_target_gb(event.gb)
        self.schedule_recompute()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.model is None and action in EDITOR_ACTIONS:
            return None  # shown dimmed until the preset is loaded (a fraction of a second)
        if action == "apply_suggestion":
            return parameters[0] < len(self.model.suggestions)
        return True

    # --- moving around ---------------------------------------------------------------------------------
    def action_sections(self) -> None:
        """Esc in a field: back to the section list, on the group the form shows."""
        sections = self.query_one(SectionList)
        if self.ready and self.form.group is not None:
            sections.select_group(self.form.group)
        sections.focus()

    async def jump_to_field(self, key: str) -> None:
        """Show `key`'s group and focus the field (the command palette's field search). A field that
        does not apply to this config is hidden: focus the field that switches it on and say so."""
        from runner.schema import FIELDS_BY_KEY, applies, condition_terms, help_text

        if not self.ready:
            return
        spec = FIELDS_BY_KEY[key]
        target: str | None = key
        if not applies(spec, self.state.config):
            # Focus the first field of this group the condition names (the switch that turns it on).
            target = next((t.path for t in condition_terms(spec.applies or "")
                           if t.path in FIELDS_BY_KEY and FIELDS_BY_KEY[t.path].group == spec.group), None)
            when = help_text.condition_text(spec.applies or "", labels=True)
            self.notify(f"{safe(spec.label)} is hidden: it applies when {safe(when)}.", title="Field hidden")
        form = self.form
        if form.group == spec.group and target is not None and form.row(target) is not None:
            form.row(target).focus_control()
        else:
            await form.show_group(spec.group, self.state, focus_key=target)
        self.query_one(SectionList).select_group(spec.group)  # its Picked finds the group already shown
        if target is None or form.row(target) is None:  # nothing in the form to focus: the section is shown
            self.query_one(SectionList).focus()

    # --- actions ---------------------------------------------------------------------------------------
    def focused_spec(self) -> FieldSpec | None:
        from ..editor_model import field_spec

        return field_spec(self.focused_key)

    def action_full_help(self) -> None:
        from .help_screen import HelpScreen

        spec = self.focused_spec()
        if spec is None:
            if not self.ready:
                return
            form = self.form
            rows = [r for r in form.rows() if r.display]
            if not rows:
                return
            spec = rows[0].spec
        mine = [p.message for p in self.model.problems_for(spec.key)]
        self.app.push_screen(HelpScreen(spec, mine + ([spec.help.advice] if spec.help.advice else []) + self.model.facts()))

    def action_toggle_help(self) -> None:
        panel = self.query_one(HelpPanel)
        panel.display = not panel.display

    def action_changes(self) -> None:
        from .changes import ChangesScreen

        self.app.push_screen(ChangesScreen(self.state, self.set_field))

    async def action_apply_suggestion(self, index: int) -> None:
        suggestions = self.model.suggestions
        if index >= len(suggestions):
            self.notify("No suggestion with that number right now.", severity="warning")
            return
        suggestion = suggestions[index]
        refused = self.model.apply_suggestion(index)
        for key in suggestion.changes:
            await self._field_set_elsewhere(key, next((r for r in refused if r.startswith(f"{key}: ")), None))
        if refused:
            self.notify("\n".join(safe(r, 400) for r in refused), title="Some changes were refused", severity="error")
        else:
            self.notify(suggestion.title, title="Applied")

    def refuse_if_invalid(self, what: str) -> bool:
        """Show the blocking problems and return True when the config cannot be saved or launched."""
        self.recompute()
        errors = self.blocking_problems()
        if errors:
            from .problems_screen import ProblemsScreen

            self.app.push_screen(ProblemsScreen(f"Cannot {what}: fix these first", errors))
        return bool(errors)

    def action_save(self) -> None:
        self.save_then(None)

    def save_then(self, then: Callable[[], Any] | None) -> None:
        """Save in place (Save as for shipped or new presets), then run `then` once written."""
        if self.model.needs_name():
            self.action_save_as(then=then)
            return
        if not self.refuse_if_invalid("save") and self.save_to(self.state.path) and then is not None:
            then()

    def action_save_as(self, export: bool = False, then: Callable[[], Any] | None = None) -> None:
        from .save_as import SaveAsScreen

        if self.refuse_if_invalid("export" if export else "save"):
            return
        title = "Export TOML" if export else "Save preset as"
        suggestion = self.state.name if self.model.needs_name() else str(self.state.path)

        def chosen(path: Path | None) -> None:
            if path is not None and self.save_to(path, export=export) and then is not None:
                then()

        self.app.push_screen(SaveAsScreen(title, suggestion, self.state.path), chosen)

    def save_to(self, path: Path, export: bool = False) -> bool:
        try:
            self.model.save(path, export=export)
        except OSError as exc:
            self.notify(f"Could not write {safe(path, 240)}: {safe(exc.strerror or exc)}", title="Not saved", severity="error")
            return False
        self.notify(safe(path, 240), title="Exported" if export else "Saved")
        if not export:
            self.recompute()
        return True

    def action_open(self) -> None:
        self.app.open_preset()

    def action_simulate(self) -> None:
        """Simulate one training step of this exact config (a subprocess); the gauge shows the result."""
        signature = self.model.gauge.signature
        self.query_one(MemoryGauge).show_simulation(signature, "[dim]simulating one training step…[/]")
        self.simulate_step(self.state.config.model_dump(mode="json"), signature)

    @work(thread=True, exclusive=True, group="simulate", name="simulate a step", exit_on_error=False)
    def simulate_step(self, config_data: dict, signature: str) -> None:
        from runner.simulate import SimulationError, remember, run_subprocess, summary_line

        try:
            result = run_subprocess(config_data)
        except SimulationError as exc:  # an outcome (no such model, out of memory): shown in the gauge
            line = f"[$warning]simulation failed:[/] {safe(exc)}"
        else:
            remember(signature, result)
            line = safe(summary_line(result))
        self.post_message(self.StepSimulated(signature, line))

    def on_editor_screen_step_simulated(self, event: StepSimulated) -> None:
        self.query_one(MemoryGauge).show_simulation(event.signature, event.line)

    def action_launch(self) -> None:
        """The launch hook: refuses with the problems shown; otherwise hands over to the app's launcher."""
        if self.refuse_if_invalid("launch"):
            return
        self.app.launch(self.state)

    def action_data(self) -> None:
        """The Data screen: the training data as training will see it (counts, lengths, masked tokens)."""
        if self.model is None:
            return
        from .data_screen import DataScreen

        self.app.push_screen(DataScreen(self.state.config, self.state.name))

    async def replace_state(self, state: EditorState) -> None:
        """Show another document (opened preset, restored draft)."""
        if self.model is None:
            from ..editor_model import EditorModel

            self.model = EditorModel(state)
        else:
            self.model.replace_state(state)
        self.focused_key = None
        if not self.ready:
            return  # the form is being filled: it will show this state
        form = self.form
        await form.show_group(form.group or GROUPS[0], state)
        self.count()
        self.recompute()
