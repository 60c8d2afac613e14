"""A small question with a few answers, each on a button and on a key (e.g. Save / Discard / Cancel)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.events import Key
from textual.screen import ModalScreen
from textual.widgets import Button, Static

Choice = tuple[str, str, str]  # (answer, button label, key)


class ConfirmScreen(ModalScreen[str]):
    """Dismisses with the chosen answer; Escape answers "cancel"."""

    def __init__(self, title: str, message: str, choices: list[Choice]) -> None:
        super().__init__(classes="dialog-screen")
        self._heading = title
        self._message = message
        self._choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self._message, classes="dialog-message")
            with Horizontal(classes="dialog-buttons"):
                for i, (answer, label, key) in enumerate(self._choices):
                    yield Button(f"{label} [{key}]", id=f"answer-{answer}",
                                 variant="primary" if i == 0 else "default", compact=True)

    def on_mount(self) -> None:
        self.query_one(".dialog").border_title = self._heading

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id.removeprefix("answer-"))

    def on_key(self, event: Key) -> None:
        if event.key == "escape":
            event.stop()
            self.dismiss("cancel")
            return
        for answer, _, key in self._choices:
            if event.key == key:
                event.stop()
                self.dismiss(answer)
                return
