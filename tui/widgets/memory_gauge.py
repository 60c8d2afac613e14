"""The memory gauge: estimated peak memory per GPU, its breakdown, the GPUs, and what would make it fit.

Numbers come only from `runner.estimate` and `runner.gpu`; when either is missing the gauge says
so instead of guessing. Without a GPU the user picks a target card or types a size.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
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


class MemoryGauge(Vertical):
    HELP = """
## Memory gauge
Estimated peak memory per GPU and where it goes. Green fits, yellow is tight (under 10% spare),
red does not fit. `F6`-`F8` apply the listed suggestions. Without a GPU, pick a target card size.
"""

    @dataclass
    class TargetChanged(Message):
        gb: float

    def compose(self) -> ComposeResult:
        with Horizontal(id="target-row"):
            yield Label("Target", id="target-label")
            yield Select([(f"{gb} GB", gb) for gb in COMMON_CARDS_GB] + [("custom", CUSTOM)],
                         value=COMMON_CARDS_GB[0], allow_blank=False, compact=True, id="target-card")
            yield Input(placeholder="GB", id="target-custom", compact=True, type="number")
        yield Static("", id="gauge-body")

    def on_mount(self) -> None:
        self.border_title = "Memory"
        self.query_one("#target-custom").display = False

    # --- the no-GPU target ----------------------------------------------------------------------------
    def show_target_picker(self, visible: bool) -> None:
        self.query_one("#target-row").display = visible

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
        self._set_verdict(verdict)
        self.border_subtitle = ""
        self.query_one("#gauge-body", Static).update(markup)

    def show_estimate(self, est, budget: int | None, verdict: str | None, gpu_lines: list[str],
                      budget_label: str) -> None:
        self._set_verdict(verdict)
        self.border_subtitle = verdict or ""
        colour = {"fits": "$success", "tight": "$warning", "does not fit": "$error"}.get(verdict or "", "$foreground")
        lines = [f"Peak [b {colour}]{gib(est.peak_bytes)} GiB[/] per GPU [dim]({escape(str(est.phase))})[/]"]
        if budget:
            lines.append(f"[{colour}]{bar(est.peak_bytes, budget)}[/] {gib(budget)} {escape(budget_label)}")
        biggest = max((c.bytes for c in est.components), default=0) or 1
        for c in est.components:
            lines.append(f"{escape(c.name)[:11]:<11} {gib(c.bytes):>6} [dim]{bar(c.bytes, biggest, 10)}[/]")
        lines.append(f"[dim]params {_count(est.params_total)}, trainable {_count(est.params_trainable)}[/]")
        lines += gpu_lines
        if est.suggestions and verdict in ("tight", "does not fit"):
            lines.append("[b]To fit:[/b]")
            for key, s in zip(SUGGESTION_KEYS, est.suggestions):
                lines.append(f"[$accent]{key}[/] {escape(s.title)} → {gib(s.peak_bytes)} GiB")
        self.query_one("#gauge-body", Static).update("\n".join(lines))

    def _set_verdict(self, verdict: str | None) -> None:
        for name, cls in VERDICT_CLASS.items():
            self.set_class(name == verdict, cls)


def _count(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)
