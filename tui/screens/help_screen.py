"""F1: the focused field's full help page, rendered from the schema's markdown."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown, Static

from runner.schema import FieldSpec, help_markdown


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "close", "Close")]

    def __init__(self, spec: FieldSpec, context: list[str]) -> None:
        super().__init__(classes="dialog-screen")
        self._spec = spec
        self._notes = context

    def compose(self) -> ComposeResult:
        text = help_markdown(self._spec)
        if self._notes:
            text += "\n\n**In context**\n\n" + "\n".join(f"- {line}" for line in self._notes)
        with Vertical(classes="dialog dialog-wide"):
            with VerticalScroll():
                yield Markdown(text, id="full-help")
            yield Static("[dim]Esc closes[/]")

    def on_mount(self) -> None:
        self.query_one(".dialog").border_title = f"Help: {self._spec.label}"

    def action_close(self) -> None:
        self.dismiss(None)
