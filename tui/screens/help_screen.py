"""F1: the focused field's full help page (runner/schema/help_text.py renders it), with this config's context."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from runner.schema import FieldSpec, help_text

from ..markup import safe


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "close", "Close")]

    def __init__(self, spec: FieldSpec, context: list[str]) -> None:
        super().__init__(classes="dialog-screen")
        self._spec = spec
        self._notes = context

    def compose(self) -> ComposeResult:
        text = help_text.markup(self._spec, full=True)
        if self._notes:
            text += "\n\n[b]In context[/b]\n" + "\n".join(f"• {safe(line, 400)}" for line in self._notes)
        with Vertical(classes="dialog dialog-wide"):
            with VerticalScroll():
                yield Static(text, id="full-help")
            yield Static("[dim]Esc closes[/]")

    def on_mount(self) -> None:
        self.query_one(".dialog").border_title = f"Help: {self._spec.label}"

    def action_close(self) -> None:
        self.dismiss(None)
