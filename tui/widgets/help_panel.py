"""The help panel: explains the focused field from its schema help, plus what applies right now.

"In context" adds facts about this config (model size, dataset size, GPU) and any problem the
cross-field rules raise for the field, so the advice is about this run, not a generic one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.containers import VerticalScroll
from textual.markup import escape
from textual.widgets import Static

if TYPE_CHECKING:  # the panel paints in the first frame, before the schema is imported
    from runner.problems import Problem
    from runner.schema import FieldSpec


class HelpPanel(VerticalScroll, can_focus=False):
    HELP = """
## Help panel
Explains the focused field: what it does, what raising or lowering it does, typical values and
advice for this config. `F1` opens the full page, `F4` hides or shows the panel.
"""

    def compose(self):
        yield Static("", id="help-text")

    def show_field(self, spec: FieldSpec, value: Any, facts: list[str], problems: list[Problem]) -> None:
        from ..values import short_value

        h = spec.help
        parts = [
            f"[b]{escape(spec.label)}[/b] [dim]{escape(spec.key)}[/]",
            escape(h.what),
            "",
            f"[$success]▲ Raise:[/] {escape(h.up)}",
            f"[$warning]▼ Lower:[/] {escape(h.down)}",
            f"[$accent]Typical:[/] {escape(h.typical)}",
            f"[dim]Default {escape(short_value(spec.default))}; {escape(spec.allowed())}[/]",
        ]
        context = [f"[$error]✗[/] {escape(p.message)}" if p.is_error else f"[$warning]![/] {escape(p.message)}"
                   for p in problems]
        if h.advice:
            context.append(escape(h.advice))
        context += [f"[dim]{escape(fact)}[/]" for fact in facts]
        if context:
            parts += ["", "[b]In context[/b]", *context]
        self.query_one("#help-text", Static).update("\n".join(parts))
        self.scroll_home(animate=False)

    def show_text(self, markup: str) -> None:
        self.query_one("#help-text", Static).update(markup)
