"""The main screen: section list, generated form, problems, help panel, memory gauge, derived numbers.

The frame (panes, section list, keys) paints before anything heavy is imported: the preset is
loaded, and pydantic, the schema, validation and the estimator imported, in a worker thread just
after it; the form fills in when they are ready. So this module imports runner's schema-side
modules inside the methods that run after loading, never at the top.

Every edit is validated at once (per field by the schema); the costlier follow-ups (cross-field
rules, estimate, derived numbers, labels) run once after a short debounce, and the autosave
draft is written a couple of seconds after the last edit.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widget import MountError
from textual.events import DescendantFocus
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header

from runner.groups import GROUPS
from runner.printable import printable

from ..markup import safe
from ..services import estimator as estimator_module
from ..services import probe_gpus
from ..widgets.derived_bar import DerivedBar
from ..widgets.help_panel import HelpPanel
from ..widgets.memory_gauge import GIB, SUGGESTION_KEYS, MemoryGauge, gib
from ..widgets.problems_list import ProblemsList
from ..widgets.section_list import SectionList

if TYPE_CHECKING:  # imported for real after the first frame (see the module docstring)
    from runner.presets import Loaded
    from runner.problems import Problem
    from runner.schema import FieldSpec
    from runner.validate import Context

    from ..state import EditorState
    from ..widgets.field_form import FieldForm
    from ..widgets.field_row import FieldRow

RECOMPUTE_DELAY = 0.08  # seconds of quiet typing before problems, estimate and derived numbers refresh
AUTOSAVE_DELAY = 2.0  # seconds after the last edit before the draft is written
# Actions that need the preset: dimmed in the footer for the moment before it is loaded.
EDITOR_ACTIONS = frozenset({"save", "save_as", "open", "full_help", "changes", "toggle_help", "launch",
                            "apply_suggestion", "simulate"})


class EditorScreen(Screen):
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
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
        *[Binding(key.lower(), f"apply_suggestion({i})", f"Fix {i + 1}") for i, key in enumerate(SUGGESTION_KEYS)],
    ]

    def __init__(self, state: EditorState | None = None, source: str = "demo", *,
                 load_when_shown: bool = False) -> None:
        """Show `state`, or load the preset `source` (a name or path) in a worker after the first frame.
        `load_when_shown`: the app starts on another screen; wait until the user comes here."""
        super().__init__()
        self._wait_until_shown = load_when_shown
        self._hidden_once = False
        self._filling = False  # the load / fill has been started (once: resume and first frame may both ask)
        self.state: EditorState = state  # type: ignore[assignment]  # None only until loaded (ready is False)
        self.source_was_lazy = state is None
        self.source = source
        self.problems: list[Problem] = []
        self.estimate: Any = None
        self.num_examples: int | None = None
        self.gpu_report: Any = None
        self.target_gb: float = 24.0
        self.focused_key: str | None = None
        self._recompute_timer: Timer | None = None
        self._autosave_timer: Timer | None = None
        self.ready = False  # the form is filled and the background checks are started
        self._fix_keys = 0  # how many "Fix n" keys the footer shows

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
        if self.state is None:
            self.query_one(ProblemsList).update(f"[dim]loading {safe(self.source)}…[/]")
        # The frame (panes, sections, keys) paints first; the form and the numbers fill in right after.
        self.call_after_refresh(self._after_first_frame)

    def _after_first_frame(self) -> None:
        if self._wait_until_shown or self._filling:
            return  # on_screen_resume starts it; or it is already started
        self._filling = True
        if self.state is None:
            self.load()
        else:
            self.call_later(self._fill)

    def on_screen_suspend(self) -> None:
        self._hidden_once = True

    def on_screen_resume(self) -> None:
        if self._wait_until_shown and self._hidden_once:  # back from the screen the app started on
            self._wait_until_shown = False
            self._after_first_frame()

    @work(thread=True, exclusive=True, group="load", name="load preset")
    def load(self) -> None:
        """Read and validate the preset, importing what the form needs on the way (off the UI thread)."""
        from runner import presets

        loaded = presets.load(self.source)
        # Warm the imports the form and the first recompute use, so the UI thread does not pay them.
        import runner.derived  # noqa: F401
        import runner.validate  # noqa: F401

        from ..widgets import field_form  # noqa: F401

        estimator_module()
        try:
            self.app.call_from_thread(self._loaded, loaded)
        except RuntimeError:
            pass  # the app closed while the preset loaded

    async def _loaded(self, loaded: Loaded) -> None:
        if loaded.config is None:  # only an unreadable preset gets here: say why, exit non-zero
            self.app.exit(return_code=2, message="\n".join(p.format() for p in loaded.problems))
            return
        from ..app import state_from

        if self.state is None:  # (a document handed over meanwhile, e.g. a run's config, wins)
            self.state = state_from(loaded)
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
    @work(thread=True, exclusive=True, group="probe", name="probe GPUs")
    def probe(self) -> None:
        report = (getattr(self.app, "probe", None) or probe_gpus)()
        self.app.call_from_thread(self._probed, report)

    def _probed(self, report: Any) -> None:
        if not self.is_attached:
            return  # the app closed while the worker ran
        self.gpu_report = report
        self.query_one(MemoryGauge).show_target_picker(not (report.available and report.gpus))
        self.recompute()

    @work(thread=True, exclusive=True, group="count", name="count examples")
    def count(self) -> None:
        config = self.state.config
        base = self.state.path.parent if self.state.path else None
        from runner.derived import count_examples

        n = count_examples(config, base)
        self.app.call_from_thread(self._counted, n)

    def _counted(self, n: int | None) -> None:
        if not self.is_attached:
            return  # the app closed while the worker ran
        self.num_examples = n
        self.recompute()

    @work(thread=True, exclusive=True, group="autosave", name="write draft")
    def write_draft(self) -> None:
        from .. import drafts

        s = self.state
        if s.config != s.baseline:
            drafts.write_draft(s.source, s.name, s.path, s.config)
        else:
            drafts.delete_draft(s.source)

    # --- edits -------------------------------------------------------------------------------------------
    async def on_field_row_edited(self, event: FieldRow.Edited) -> None:
        from runner.schema import get_value

        event.stop()
        unchanged = event.error is None and event.key not in self.state.invalid and \
            event.value == get_value(self.state.config, event.key)
        if unchanged:
            return  # widgets echo their initial value on mount; nothing was edited
        if event.error:
            self.state.mark_invalid(event.key, event.text, event.error)
            event.row.show_error(event.error)
        else:
            event.row.show_error(self.state.set_value(event.key, event.value, event.text))
        await self.after_edit(count_again=event.key.startswith("data."), focus_key=event.key)

    async def set_field(self, key: str, value: Any) -> str | None:
        """Set a field from outside the form (revert, suggestion); the form row follows."""
        from runner.schema import get_value

        reason = self.state.set_value(key, value)
        row = self.form.row(key) if self.ready else None
        if row is not None and reason is None:
            row.set_value(get_value(self.state.config, key))
        await self.after_edit(count_again=key.startswith("data."))
        return reason

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
        if self._recompute_timer is not None:
            self._recompute_timer.stop()
        self._recompute_timer = self.set_timer(RECOMPUTE_DELAY, self.recompute)

    # --- what follows from the config ----------------------------------------------------------------
    def context(self, launching: bool = False) -> Context:
        """This machine, for the "on this machine" notes; errors only when about to launch here."""
        from runner.validate import context_from_report

        return context_from_report(self.gpu_report, launching=launching)

    def blocking_problems(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    def recompute(self) -> None:
        if self.state is None:
            return  # nothing loaded yet (a worker or timer fired early)
        try:
            self._recompute()
        except NoMatches:
            pass  # a worker finished while the app was tearing the screen down; nothing left to update

    def _recompute(self) -> None:
        from runner.derived import derive
        from runner.problems import Problem
        from runner.schema import FIELDS_BY_KEY
        from runner.validate import check

        state = self.state
        invalid = [Problem("error", reason, key=key) for key, (_, reason) in state.invalid.items()]
        self.problems = invalid + check(state.config, self.context())
        self.query_one(ProblemsList).show(self.problems)
        self.query_one(SectionList).flag({FIELDS_BY_KEY[p.key].group for p in self.problems
                                          if p.is_error and p.key in FIELDS_BY_KEY})
        self.query_one(DerivedBar).show(derive(state.config, self.num_examples))
        self.update_gauge()
        changed = {c.key for c in state.changes() if c.from_preset}
        if self.ready:
            self.form.refresh_changed(changed)
        self.sub_title = f"{printable(state.name)}{' (modified)' if state.dirty else ''} · {printable(_where(state), 200)}"
        self.refresh_help()

    def budget(self) -> tuple[int, str]:
        """Bytes available per GPU: the least free memory of the GPUs the run uses, else the typed target."""
        report = self.gpu_report
        if report is not None and report.available and report.gpus:
            used = _selected_gpus(report.gpus, self.state.config.launch.gpu_ids)
            return min(g.free_bytes for g in used), "GiB free"
        return int(self.target_gb * GIB), "GiB target"

    def gpu_count(self) -> int | None:
        report = self.gpu_report
        return len(report.gpus) if report is not None and report.available else None

    def update_gauge(self) -> None:
        gauge = self.query_one(MemoryGauge)
        estimator = estimator_module()
        if estimator is None:
            self.estimate = None
            gauge.show_message("[dim]No estimate: the memory estimator (runner.estimate) is not installed.[/]")
            self._sync_fix_keys()
            return
        budget, label = self.budget()
        gauge.config_signature = estimator.memory_signature(self.state.config)
        try:
            # with the data lengths the Data screen / `tunedeck data` recorded, as `tunedeck estimate` does
            est = estimator.estimate_for(self.state.config, budget, self.gpu_count())
        except estimator.EstimateError as exc:
            self.estimate = None
            gauge.show_message(f"[$warning]Cannot estimate:[/] {exc}")
            self._sync_fix_keys()
            return
        self.estimate = est
        verdict = estimator.verdict(est.peak_bytes, budget)
        gauge.show_estimate(est, budget, verdict, self.gpu_lines(estimator, est), label)
        self._sync_fix_keys()

    def _sync_fix_keys(self) -> None:
        """The Fix keys appear only while there are suggestions to apply. The footer rebuilds
        itself on every refresh_bindings, so refresh only when their number changes."""
        fixes = len(getattr(self.estimate, "suggestions", ()))
        if fixes != self._fix_keys:
            self._fix_keys = fixes
            self.refresh_bindings()

    def gpu_lines(self, estimator, est) -> list[str]:
        report = self.gpu_report
        if report is None:
            return ["[dim]probing GPUs…[/]"]
        if not (report.available and report.gpus):
            return [f"[dim]No GPU: {report.reason}[/]"]
        lines = []
        for g in report.gpus:
            colour = {"fits": "$success", "tight": "$warning"}.get(estimator.verdict(est.peak_bytes, g.free_bytes), "$error")
            util = f" {g.utilization_percent}%" if getattr(g, "utilization_percent", None) is not None else ""
            lines.append(f"[{colour}]GPU{g.index}[/] {g.name} {gib(g.free_bytes)}/{gib(g.total_bytes)} free{util}")
        return lines

    def facts(self) -> list[str]:
        """Context for advice: this model's size, this dataset's size, this machine's GPU."""
        from runner.units import count_text

        out = []
        if self.estimate is not None and getattr(self.estimate, "params_total", None):
            out.append(f"This model has about {count_text(self.estimate.params_total)} parameters.")
        if self.num_examples is not None:
            out.append(f"The dataset has {self.num_examples:,} training examples.")
        report = self.gpu_report
        if report is not None and report.available and report.gpus:
            g = report.gpus[0]
            out.append(f"GPU: {len(report.gpus)} x {g.name}, {gib(g.total_bytes)} GiB each.")
        elif report is not None:
            out.append(f"No GPU detected; sizing for a {self.target_gb:g} GB card.")
        return out

    def summarise(self, config) -> str:
        """A one-line estimate for another config (the Open picker), against this machine's budget."""
        estimator = estimator_module()
        if estimator is None or config is None:
            return ""
        budget, _ = self.budget()
        try:
            est = estimator.estimate(config, budget)
        except Exception:  # noqa: BLE001 - an unknown model in one preset must not break the picker
            return "[dim]no estimate[/]"
        verdict = estimator.verdict(est.peak_bytes, budget)
        colour = {"fits": "$success", "tight": "$warning"}.get(verdict, "$error")
        return f"[{colour}]~{gib(est.peak_bytes)} GiB, {verdict}[/]"

    # --- help follows focus --------------------------------------------------------------------------------
    @on(DescendantFocus)
    def _focus_moved(self, event: DescendantFocus) -> None:
        if self.state is None:
            return
        from ..widgets.field_row import FieldRow

        row = next((n for n in event.widget.ancestors_with_self if isinstance(n, FieldRow)), None)
        self.focused_key = row.spec.key if row is not None else None
        self.refresh_help(event.widget)

    def refresh_help(self, widget=None) -> None:
        panel = self.query_one(HelpPanel)
        if self.focused_key is not None:
            from runner.schema import FIELDS_BY_KEY, get_value

            spec = FIELDS_BY_KEY[self.focused_key]
            mine = [p for p in self.problems if p.key == spec.key]
            panel.show_field(spec, get_value(self.state.config, spec.key), self.facts(), mine)
            return
        widget = widget or self.focused
        for node in (widget.ancestors_with_self if widget is not None else ()):
            text = getattr(type(node), "HELP", None)
            if text and type(node).__module__.startswith("tui."):
                panel.show_text(_markdownish(text))
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
        self.target_gb = event.gb
        self.schedule_recompute()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.state is None and action in EDITOR_ACTIONS:
            return None  # shown dimmed until the preset is loaded (a fraction of a second)
        if action == "apply_suggestion":
            est = self.estimate
            return est is not None and parameters[0] < len(getattr(est, "suggestions", ()))
        return True

    # --- actions ---------------------------------------------------------------------------------------
    def focused_spec(self) -> FieldSpec | None:
        from runner.schema import FIELDS_BY_KEY

        return FIELDS_BY_KEY.get(self.focused_key or "")

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
        mine = [p.message for p in self.problems if p.key == spec.key]
        self.app.push_screen(HelpScreen(spec, mine + ([spec.help.advice] if spec.help.advice else []) + self.facts()))

    def action_toggle_help(self) -> None:
        panel = self.query_one(HelpPanel)
        panel.display = not panel.display

    def action_changes(self) -> None:
        from .changes import ChangesScreen

        self.app.push_screen(ChangesScreen(self.state, self.set_field))

    async def action_apply_suggestion(self, index: int) -> None:
        est = self.estimate
        if est is None or index >= len(est.suggestions):
            self.notify("No suggestion with that number right now.", severity="warning")
            return
        suggestion = est.suggestions[index]
        refused = [f"{k}: {r}" for k, v in suggestion.changes.items() if (r := await self.set_field(k, v))]
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
        if self.state.path is None or self.state.shipped:
            self.action_save_as(then=then)
            return
        if not self.refuse_if_invalid("save") and self.save_to(self.state.path) and then is not None:
            then()

    def action_save_as(self, export: bool = False, then: Callable[[], Any] | None = None) -> None:
        from .save_as import SaveAsScreen

        if self.refuse_if_invalid("export" if export else "save"):
            return
        title = "Export TOML" if export else "Save preset as"
        suggestion = self.state.name if self.state.shipped or self.state.path is None else str(self.state.path)

        def chosen(path: Path | None) -> None:
            if path is not None and self.save_to(path, export=export) and then is not None:
                then()

        self.app.push_screen(SaveAsScreen(title, suggestion, self.state.path), chosen)

    def save_to(self, path: Path, export: bool = False) -> bool:
        from runner import presets

        from .. import drafts
        from ..recent import remember

        state = self.state
        try:
            presets.save(state.config, path, document=state.document, with_help=True, typed=state.typed)
        except OSError as exc:
            self.notify(f"Could not write {safe(path, 240)}: {safe(exc.strerror or exc)}", title="Not saved", severity="error")
            return False
        remember(path)
        if export:
            self.notify(safe(path, 240), title="Exported")
            return True
        old_source = state.source
        reloaded = presets.load(path)  # the file as written, so later saves keep its comments
        state.mark_saved(path.resolve(), path.stem, reloaded.document)
        drafts.delete_draft(old_source)
        drafts.delete_draft(state.source)
        self.notify(safe(path, 240), title="Saved")
        self.recompute()
        return True

    def action_open(self) -> None:
        self.app.open_preset()

    def action_simulate(self) -> None:
        """Simulate one training step of this exact config (a subprocess); the gauge shows the result."""
        from runner.estimate import memory_signature

        signature = memory_signature(self.state.config)
        self.query_one(MemoryGauge).show_simulation(signature, "[dim]simulating one training step…[/]")
        self.simulate_step(self.state.config.model_dump(mode="json"), signature)

    @work(thread=True, exclusive=True, group="simulate", name="simulate a step", exit_on_error=False)
    def simulate_step(self, config_data: dict, signature: str) -> None:
        from runner.simulate import SimulationError, remember, run_subprocess, summary_line

        try:
            result = run_subprocess(config_data)
        except SimulationError as exc:
            line = f"[$warning]simulation failed:[/] {safe(exc)}"
        else:
            remember(signature, result)
            line = safe(summary_line(result))
        self.app.call_from_thread(self._simulated, signature, line)

    def _simulated(self, signature: str, line: str) -> None:
        if self.is_attached:
            self.query_one(MemoryGauge).show_simulation(signature, line)

    def action_launch(self) -> None:
        """The launch hook: refuses with the problems shown; otherwise hands over to the app's launcher."""
        if self.refuse_if_invalid("launch"):
            return
        self.app.launch(self.state)

    def action_data(self) -> None:
        """The Data screen: the training data as training will see it (counts, lengths, masked tokens)."""
        if self.state is None:
            return
        from .data_screen import DataScreen

        self.app.push_screen(DataScreen(self.state.config, self.state.name))

    async def replace_state(self, state: EditorState) -> None:
        """Show another document (opened preset, restored draft)."""
        self.state = state
        self.focused_key = None
        if not self.ready:
            return  # the form is being filled: it will show this state
        form = self.form
        await form.show_group(form.group or GROUPS[0], state)
        self.count()
        self.recompute()


def _where(state: EditorState) -> str:
    """Where the document lives, short: 'shipped preset', a path relative to here, or ~/..."""
    if state.shipped:
        return "shipped preset"
    if state.path is None:
        return "not saved yet"
    for base, shown in ((Path.cwd(), ""), (Path.home(), "~/")):
        try:
            return shown + str(state.path.relative_to(base))
        except ValueError:
            continue
    return str(state.path)


def _selected_gpus(gpus: list[Any], gpu_ids: str) -> list[Any]:
    if gpu_ids.strip() in ("", "all"):
        return gpus
    wanted = {int(i) for i in gpu_ids.split(",") if i.strip().isdigit()}
    return [g for g in gpus if g.index in wanted] or gpus


def _markdownish(text: str) -> str:
    """A widget's HELP (a little markdown) as console markup: '## Title' bold, `keys` highlighted."""
    out: list[str] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:  # HELP strings are wrapped in the source; rewrap each paragraph here
            parts = " ".join(paragraph).split("`")
            out.append("".join(f"[$accent]{p}[/]" if i % 2 else p for i, p in enumerate(parts)))
            paragraph.clear()

    for line in text.strip().splitlines():
        if line.startswith("#"):
            flush()
            out.append(f"[b]{line.lstrip('# ')}[/b]")
        elif not line.strip():
            flush()
        else:
            paragraph.append(line.strip())
    flush()
    return "\n".join(out)
