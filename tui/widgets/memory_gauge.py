"""The memory gauge: estimated peak memory per GPU, its breakdown, the GPUs, and what would make it fit.

Numbers come only from `runner.estimate` and `runner.gpu`; when either is missing the gauge says
so instead of guessing. Without a GPU the user picks a target card or types a size.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.markup import escape
from textual.message import Message
from textual.widgets import Input, Label, Select, Static

GIB = 1024**3
COMMON_CARDS_GB = (24, 40, 48, 80)  # RTX 3090/4090 & A10, A100-40G, A6000/L40S, A100/H100-80G
CUSTOM = 0
BAR_WIDTH = 20
VERDICT_CLASS = {"fits": "-fits", "tight": "-tight", "does not fit": "-nofit"}
SUGGESTION_KEYS = ("F6", "F7", "F8")


def gib(n: float) -> str:
    return f"{n / GIB:.1f}"


def bar(part: float, whole: float, width: int = BAR_WIDTH) -> str:
    """A text bar: filled cells for part/whole, the rest light; over 100% fills it all."""
    filled = 0 if whole <= 0 else min(width, round(width * part / whole))
    return "█" * filled + "░" * (width - filled)


class MemoryGauge(VerticalScroll, can_focus=False):
    HELP = """
## Memory gauge
Estimated peak memory per GPU and where it goes. Green fits, yellow is tight (under 10% spare),
red does not fit. `F6`-`F8` apply the listed suggestions. Without a GPU, pick a target card size.
`Ctrl+E` simulates one training step of this exact model on fake tensors (no GPU, seconds to a minute)
and shows "simulated: X GiB" here; it also works for architectures the estimate does not know.
"""

    @dataclass
    class TargetChanged(Message):
        gb: float

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._last = None
        self._message: tuple[str, str | None] | None = None
        self.config_signature: str | None = None  # memory signature of the config now shown
        self._simulated: tuple[str | None, str] | None = None  # (signature it was run for, markup line)

    def compose(self) -> ComposeResult:
        yield Static("", id="gauge-body")

    def on_mount(self) -> None:
        self.border_title = "Memory"

    # --- the no-GPU target ----------------------------------------------------------------------------
    def show_target_picker(self, visible: bool) -> None:
        """Show the target-card picker (only without a GPU: built then, not in the first frame)."""
        rows = self.query("#target-row")
        if rows:
            rows.first().display = visible
        elif visible:
            custom = Input(placeholder="GB", id="target-custom", compact=True, type="number")
            custom.display = False
            self.mount(Horizontal(
                Label("Target", id="target-label"),
                Select([(f"{gb} GB", gb) for gb in COMMON_CARDS_GB] + [("custom", CUSTOM)],
                       value=COMMON_CARDS_GB[0], allow_blank=False, compact=True, id="target-card"),
                custom, id="target-row"), before=0)

    @on(Select.Changed, "#target-card")
    def _card(self, event: Select.Changed) -> None:
        event.stop()
        custom = self.query_one("#target-custom", Input)
        custom.display = event.value == CUSTOM
        if event.value != CUSTOM:
            self.post_message(self.TargetChanged(float(event.value)))
        else:
            custom.focus()

    @on(Input.Changed, "#target-custom")
    def _custom(self, event: Input.Changed) -> None:
        event.stop()
        try:
            gb = float(event.value)
        except ValueError:
            return
        if gb > 0:
            self.post_message(self.TargetChanged(gb))

    # --- content ---------------------------------------------------------------------------------
    def show_message(self, markup: str, verdict: str | None = None) -> None:
        self._last = None
        self._message = (markup, verdict)
        self._set_verdict(verdict)
        self.border_subtitle = ""
        line = self.simulated_line()
        self.query_one("#gauge-body", Static).update(markup + (f"\n{line}" if line else ""))

    # --- the simulated step (runner.simulate, run on a key) ------------------------------------------
    def show_simulation(self, signature: str | None, line: str) -> None:
        """Show a simulation's one-line result (or progress, or failure) for the config with `signature`."""
        self._simulated = (signature, line)
        if self._last is not None:
            self.show_estimate(*self._last)
        elif self._message is not None:
            self.show_message(*self._message)

    def simulated_line(self) -> str | None:
        """The simulation's line while the config is the one it ran for (None when stale or never run)."""
        if self._simulated is None:
            return None
        signature, line = self._simulated
        return line if signature is None or signature == self.config_signature else None

    def show_gauge(self, gauge, gpu_report, invalid: list[str], suggestions: tuple) -> None:
        """Show the editor model's gauge (`tui.editor_model.Gauge`) for this machine's GPU report.
        `invalid`: fields holding invalid text; the figures are then for their last valid values,
        which the gauge says, and it offers no suggestions until they are fixed."""
        self.config_signature = gauge.signature
        if gauge.estimate is None:
            if gauge.signature is None:  # no estimator at all
                self.show_message(f"[dim]No estimate: {escape(gauge.reason or '')}.[/]")
            else:
                self.show_message(f"[$warning]Cannot estimate:[/] {escape(gauge.reason or '')}")
            return
        note = None
        if invalid:
            names = ", ".join(invalid)
            note = (f"[$error]{escape(names)} {'is' if len(invalid) == 1 else 'are'} invalid:[/] "
                    "figures are for the last valid value; no fixes until it is valid")
        self.show_estimate(gauge.estimate, gauge.budget, gauge.verdict, gpu_lines(gpu_report, gauge.gpu_verdicts),
                           gauge.budget_label, suggestions=suggestions, note=note)

    def show_estimate(self, est, budget: int | None, verdict: str | None, gpu_lines: list[str],
                      budget_label: str, suggestions: tuple | None = None, note: str | None = None) -> None:
        self._last = (est, budget, verdict, gpu_lines, budget_label, suggestions, note)
        suggestions = est.suggestions if suggestions is None else suggestions
        self._set_verdict(verdict)
        self.border_subtitle = verdict or ""
        colour = {"fits": "$success", "tight": "$warning", "does not fit": "$error"}.get(verdict or "", "$foreground")
        width = max(self.scrollable_content_region.width, 24)
        lines = [note] if note else []
        lines.append(f"Peak [b {colour}]{gib(est.peak_bytes)} GiB[/]/GPU [dim]({escape(str(est.phase))})[/]")
        simulated = self.simulated_line()
        if simulated:
            lines.append(simulated)
        if budget:
            lines.append(f"[{colour}]{bar(est.peak_bytes, budget, min(BAR_WIDTH, width - 16))}[/] "
                         f"of {gib(budget)} {escape(budget_label)}")
        lines += gpu_lines
        if suggestions:  # the actionable part first: it must stay visible in a short pane
            speed = all(getattr(s, "kind", "memory") == "speed" for s in suggestions)
            lines.append("[b]Memory to spare; faster:[/b]" if speed else "[b]To fit:[/b]")
            for key, s in zip(SUGGESTION_KEYS, suggestions):
                lines.append(f"[$accent]{key}[/] {escape(s.title)} → {gib(s.peak_bytes)} GiB")
        # Breakdown: name, GiB, and a bar relative to the largest part when there is room for it.
        mini = 10 if width >= 34 else 0
        name_width = width - 7 - (mini + 1 if mini else 0)
        biggest = max((c.bytes for c in est.components), default=0) or 1
        for c in est.components:
            cells = f" [dim]{bar(c.bytes, biggest, mini)}[/]" if mini else ""
            lines.append(f"{escape(_clip(c.name, name_width)):<{name_width}}{gib(c.bytes):>7}{cells}")
        lines.append(f"[dim]params {_count(est.params_total)}, trainable {_count(est.params_trainable)}[/]")
        if getattr(est, "seq_source", "max_seq_length") != "max_seq_length":  # sized for the measured data
            lines.append(f"[dim]activations at {est.seq_tokens} tokens: {escape(est.seq_source)}[/]")
        self.query_one("#gauge-body", Static).update("\n".join(lines))

    def on_resize(self) -> None:
        if self._last is not None:
            self.show_estimate(*self._last)

    def _set_verdict(self, verdict: str | None) -> None:
        for name, cls in VERDICT_CLASS.items():
            self.set_class(name == verdict, cls)


def gpu_lines(report, verdicts) -> list[str]:
    """One line per GPU of the probe report, coloured by whether the estimate fits its free memory."""
    if report is None:
        return ["[dim]probing GPUs…[/]"]
    if not (report.available and report.gpus):
        return [f"[dim]No GPU: {escape(str(report.reason))}[/]"]
    lines = []
    for g, verdict in verdicts:
        colour = {"fits": "$success", "tight": "$warning"}.get(verdict, "$error")
        util = f" {g.utilization_percent}%" if getattr(g, "utilization_percent", None) is not None else ""
        lines.append(f"[{colour}]GPU{g.index}[/] {escape(str(g.name))} {gib(g.free_bytes)}/{gib(g.total_bytes)} free{util}")
    return lines


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 1)] + "…"


def _count(n: int | None) -> str:
    from runner.units import count_text  # the one way counts are written

    return count_text(n)
