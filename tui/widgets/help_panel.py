"""The help panel: explains the focused field from its schema help, plus what applies right now.

The field's own help is rendered by runner/schema/help_text.py (the one help renderer); this panel adds
"In context": facts about this config (model size, dataset size, GPU) and any problem the cross-field
rules raise for the field, so the advice is about this run, not a generic one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.containers import VerticalScroll
from textual.widgets import Static

from ..markup import safe

if TYPE_CHECKING:  # the panel paints in the first frame, before the schema is imported
    from runner.problems import Problem
    from runner.schema import FieldSpec

CONTEXT_LIMIT = 400  # characters of one context line (a problem message) shown before it is shortened


class HelpPanel(VerticalScroll, can_focus=False):
    HELP = """
## Help panel
Explains the focused field: what it does, what raising or lowering it does (turning it on or off for
a switch), typical values and advice for this config. `F1` opens the full page, `F4` hides or shows
the panel.
"""

    def compose(self):
        yield Static("", id="help-text")

    def show_field(self, spec: FieldSpec, value: Any, facts: list[str], problems: list[Problem]) -> None:
        from runner.schema import help_text

        context = [f"[$error]✗[/] {safe(p.message, CONTEXT_LIMIT)}" if p.is_error
                   else f"[$warning]![/] {safe(p.message, CONTEXT_LIMIT)}" for p in problems]
        if spec.help.advice:
            context.append(safe(spec.help.advice, CONTEXT_LIMIT))
        context += [f"[dim]{safe(fact, CONTEXT_LIMIT)}[/]" for fact in facts]
        text = help_text.markup(spec)
        if context:
            text += "\n\n[b]In context[/b]\n" + "\n".join(context)
        self.query_one("#help-text", Static).update(text)
        self.scroll_home(animate=False)

    def show_text(self, markup: str) -> None:
        self.query_one("#help-text", Static).update(markup)
