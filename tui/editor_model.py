"""The editor without widgets: one preset being edited, and everything that follows from it.

`EditorScreen` is a view over this: its widgets render what the model says and hand edits back.
The model owns the document (`EditorState`: config, baseline, invalid text), what the user typed
(so `3e-4` is written back as `3e-4`), the machine facts the background workers found (GPU report,
example count, the no-GPU target size), and what follows: validation problems, derived numbers and
the memory estimate. Tests drive it directly, without Textual (tests/test_editor_model.py).

Pure Python: it imports runner and tui's other widget-free modules (state, values, services,
drafts, recent), never Textual and never torch & co.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner import presets
from runner.derived import Derived, count_examples, derive
from runner.printable import printable
from runner.problems import ConfigError, Problem
from runner.schema import FIELDS_BY_KEY, Config, FieldSpec, get_value
from runner.units import count_text
from runner.validate import Context, check, context_from_report

from .services import estimator as estimator_module
from .state import EditorState
from .values import InvalidValue, parse_text

GIB = 1024**3
DEFAULT_TARGET_GB = 24.0  # the card a machine without a GPU sizes for until the user picks one


@dataclass(frozen=True)
class Gauge:
    """What the memory gauge shows: an estimate against a budget, or why there is none."""

    estimate: Any | None  # runner.estimate.Estimate
    reason: str | None  # why there is no estimate (plain text), else None
    budget: int  # bytes available per GPU
    budget_label: str  # "GiB free" (the least free GPU the run uses) or "GiB target" (no GPU)
    verdict: str | None  # "fits", "tight", "does not fit"
    gpu_verdicts: tuple[tuple[Any, str], ...]  # (GPU of the probe report, verdict against its free memory)
    signature: str | None  # memory signature of the config it is for (simulation results match on it)

    @property
    def suggestions(self) -> tuple:
        return tuple(self.estimate.suggestions) if self.estimate is not None else ()


@dataclass(frozen=True)
class _Figures:
    problems: list[Problem]
    derived: Derived
    gauge: Gauge


class EditorModel:
    """One document being edited and the figures that follow from it."""

    def __init__(self, state: EditorState) -> None:
        self.state = state
        self.gpu_report: Any = None  # runner.gpu.GpuReport (or tui.services.NoProbe); None until probed
        self.num_examples: int | None = None  # training examples, when they can be counted cheaply
        self.target_gb = DEFAULT_TARGET_GB
        self._figures: _Figures | None = None  # computed on first read after a change (see `figures`)

    # --- opening ---------------------------------------------------------------------------------------
    @classmethod
    def load(cls, source: str | Path) -> EditorModel:
        """Open the preset `source` (a name or a path). Raises ConfigError with every problem when it
        cannot be read into a config at all; a config with problems opens, and lists them."""
        loaded = presets.load(source)
        if loaded.config is None:
            raise ConfigError(loaded.problems)
        return cls(EditorState.from_loaded(loaded))

    def replace_state(self, state: EditorState) -> None:
        """Edit another document (opened preset, restored draft); the machine facts stay."""
        self.state = state
        self.changed()

    # --- edits -------------------------------------------------------------------------------------------
    def set_text(self, key: str, text: str) -> str | None:
        """Set a field from what the user typed. Returns the reason it is invalid, or None.
        Invalid text is kept (and blocks saving) until it is fixed; the config keeps the last valid value."""
        try:
            value = parse_text(FIELDS_BY_KEY[key], text)
        except InvalidValue as exc:
            self.mark_invalid(key, text, str(exc))
            return str(exc)
        return self.set_value(key, value, text)

    def set_value(self, key: str, value: Any, text: str | None = None) -> str | None:
        """Set a field to `value` (`text`: how the user wrote it). Returns the reason it was refused, or None."""
        reason = self.state.set_value(key, value, text)  # keeps `text` in state.typed for the save
        self.changed()
        return reason

    def mark_invalid(self, key: str, text: str, reason: str) -> None:
        self.state.mark_invalid(key, text, reason)
        self.changed()

    def is_echo(self, key: str, value: Any, error: str | None) -> bool:
        """Whether an edit only repeats what the field holds (widgets echo their value when mounted)."""
        return error is None and key not in self.state.invalid and value == get_value(self.state.config, key)

    def revert(self, key: str) -> None:
        self.state.revert(key)
        self.changed()

    # --- machine facts (found by the screen's workers) ------------------------------------------------
    def set_gpu_report(self, report: Any) -> None:
        self.gpu_report = report
        self.changed()

    def set_num_examples(self, n: int | None) -> None:
        self.num_examples = n
        self.changed()

    def set_target_gb(self, gb: float) -> None:
        self.target_gb = gb
        self.changed()

    def count_examples(self) -> int | None:
        """Count the training examples (reads the data files: call it off the UI thread)."""
        base = self.state.path.parent if self.state.path else None
        return count_examples(self.state.config, base)

    @property
    def has_gpus(self) -> bool:
        report = self.gpu_report
        return report is not None and bool(report.available and report.gpus)

    # --- what follows from the config ------------------------------------------------------------------
    def context(self, launching: bool = False) -> Context:
        """This machine, for the "on this machine" notes; errors only when about to launch here."""
        return context_from_report(self.gpu_report, launching=launching)

    def changed(self) -> None:
        """The document or a machine fact changed: the figures are recomputed when next read."""
        self._figures = None

    @property
    def figures(self) -> _Figures:
        """Problems (invalid text first, then the schema's rules), derived numbers and the estimate,
        computed once per change, when first read (so a burst of keystrokes costs one computation)."""
        if self._figures is None:
            state = self.state
            invalid = [Problem("error", reason, key=key) for key, (_, reason) in state.invalid.items()]
            self._figures = _Figures(invalid + check(state.config, self.context()),
                                     derive(state.config, self.num_examples), self._estimate())
        return self._figures

    @property
    def problems(self) -> list[Problem]:
        return self.figures.problems

    @property
    def derived(self) -> Derived:
        return self.figures.derived

    @property
    def gauge(self) -> Gauge:
        return self.figures.gauge

    @property
    def blocking_problems(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    @property
    def error_groups(self) -> set[str]:
        """The editor groups that hold an error (the section list marks them)."""
        return {FIELDS_BY_KEY[p.key].group for p in self.blocking_problems if p.key in FIELDS_BY_KEY}

    def invalid_names(self) -> list[str]:
        """The fields holding invalid text, by their TOML names."""
        return [FIELDS_BY_KEY[key].name for key in self.state.invalid]

    def invalid_note(self, with_reason: bool = True) -> str | None:
        """While a field holds invalid text, what the figures (derived numbers, gauge) are really for.
        Without the reason it fits one line of an 80-column terminal (the field shows the reason)."""
        invalid = self.state.invalid
        if not invalid:
            return None
        key, (_, reason) = next(iter(invalid.items()))
        more = f" (and {len(invalid) - 1} more)" if len(invalid) > 1 else ""
        why = f": {reason}" if with_reason else ""
        return f"{FIELDS_BY_KEY[key].name} is invalid{more}{why}; figures are for the last valid value"

    @property
    def changed_keys(self) -> set[str]:
        """Fields that differ from the preset as loaded (or last saved)."""
        return {c.key for c in self.state.changes() if c.from_preset}

    def budget(self) -> tuple[int, str]:
        """Bytes available per GPU: the least free memory of the GPUs the run uses, else the target."""
        if self.has_gpus:
            used = selected_gpus(self.gpu_report.gpus, self.state.config.launch.gpu_ids)
            return min(g.free_bytes for g in used), "GiB free"
        return int(self.target_gb * GIB), "GiB target"

    def gpu_count(self) -> int | None:
        report = self.gpu_report
        return len(report.gpus) if report is not None and report.available else None

    def _estimate(self) -> Gauge:
        budget, label = self.budget()
        estimator = estimator_module()
        if estimator is None:
            return Gauge(None, "the memory estimator (runner.estimate) is not installed", budget, label, None, (), None)
        config = self.state.config
        signature = estimator.memory_signature(config)
        try:
            # with the data lengths the Data screen / `tunedeck data` recorded, as `tunedeck estimate` does
            est = estimator.estimate_for(config, budget, self.gpu_count())
        except estimator.EstimateError as exc:
            return Gauge(None, str(exc), budget, label, None, (), signature)
        gpus = tuple((g, estimator.verdict(est.peak_bytes, g.free_bytes)) for g in self.gpu_report.gpus) \
            if self.has_gpus else ()
        return Gauge(est, None, budget, label, estimator.verdict(est.peak_bytes, budget), gpus, signature)

    @property
    def estimate(self) -> Any | None:
        return self.gauge.estimate

    @property
    def suggestions(self) -> tuple:
        """The gauge's suggestions, while they can be trusted: none while a field holds invalid text
        (they would be computed from the last valid value, not from what the user sees)."""
        if self.state.invalid:
            return ()
        return self.gauge.suggestions

    def apply_suggestion(self, index: int) -> list[str]:
        """Apply the index-th suggestion; returns 'key: reason' for each change that was refused."""
        suggestion = self.suggestions[index]
        return [f"{k}: {r}" for k, v in suggestion.changes.items() if (r := self.set_value(k, v))]

    def facts(self) -> list[str]:
        """Context for advice: this model's size, this dataset's size, this machine's GPU."""
        out = []
        est = self.estimate
        if est is not None and est.params_total:
            out.append(f"This model has about {count_text(est.params_total)} parameters.")
        if self.num_examples is not None:
            out.append(f"The dataset has {self.num_examples:,} training examples.")
        report = self.gpu_report
        if self.has_gpus:
            g = report.gpus[0]
            out.append(f"GPU: {len(report.gpus)} x {g.name}, {g.total_bytes / GIB:.1f} GiB each.")
        elif report is not None:
            out.append(f"No GPU detected; sizing for a {self.target_gb:g} GB card.")
        return out

    def summarise(self, config: Config | None) -> tuple[float, str] | None:
        """Peak GiB and verdict of another config (the Open picker) against this machine's budget;
        None without an estimator, and (nan, 'no estimate') when it cannot be estimated."""
        estimator = estimator_module()
        if estimator is None or config is None:
            return None
        budget, _ = self.budget()
        try:
            est = estimator.estimate(config, budget)
        except estimator.EstimateError:
            return float("nan"), "no estimate"
        return est.peak_bytes / GIB, estimator.verdict(est.peak_bytes, budget)

    def problems_for(self, key: str) -> list[Problem]:
        return [p for p in self.problems if p.key == key]

    def title(self) -> str:
        """The screen's subtitle: the preset's name, whether it is modified, and where it lives."""
        state = self.state
        return f"{printable(state.name)}{' (modified)' if state.dirty else ''} · {printable(where(state), 200)}"

    # --- saving ------------------------------------------------------------------------------------------
    def needs_name(self) -> bool:
        """Save asks for a name: shipped presets are never overwritten, new ones have no file yet."""
        return self.state.path is None or self.state.shipped

    def save(self, path: Path, *, export: bool = False) -> Path:
        """Write the config to `path` atomically, keeping the file's comments and the user's notation.
        Unless `export`, the document now lives there (later saves go there, drafts are dropped).
        Raises OSError when it cannot be written; refuses (ConfigError) while anything is invalid."""
        from . import drafts
        from .recent import remember

        if self.blocking_problems:
            raise ConfigError(self.blocking_problems)
        state = self.state
        presets.save(state.config, path, document=state.document, with_help=True, typed=state.typed)
        remember(path)
        if export:
            return path
        old_source = state.source
        reloaded = presets.load(path)  # the file as written, so later saves keep its comments
        state.mark_saved(path.resolve(), path.stem, reloaded.document)  # the file holds the notation now
        drafts.delete_draft(old_source)
        drafts.delete_draft(state.source)
        self.changed()
        return path

    # --- drafts ------------------------------------------------------------------------------------------
    def write_draft(self) -> None:
        """Keep unsaved edits in a draft (or drop the draft when nothing is unsaved)."""
        from . import drafts

        s = self.state
        if s.config != s.baseline:
            drafts.write_draft(s.source, s.name, s.path, s.config)
        else:
            drafts.delete_draft(s.source)


def where(state: EditorState) -> str:
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


def selected_gpus(gpus: list[Any], gpu_ids: str) -> list[Any]:
    """The GPUs `launch.gpu_ids` picks ("all" or "0,2"); all of them when it names none that exist."""
    if gpu_ids.strip() in ("", "all"):
        return gpus
    wanted = {int(i) for i in gpu_ids.split(",") if i.strip().isdigit()}
    return [g for g in gpus if g.index in wanted] or gpus


def field_spec(key: str | None) -> FieldSpec | None:
    return FIELDS_BY_KEY.get(key or "")
