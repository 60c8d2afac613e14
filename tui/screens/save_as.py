"""F2: save under a new name (into the user preset folder) or to a path; also used by Export."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from runner.paths import user_presets_dir

from ..markup import safe
from .confirm import ConfirmScreen


def target_path(text: str) -> Path:
    """A bare name goes to the user preset folder as NAME.toml; anything path-like is used as given."""
    text = text.strip()
    if "/" in text or "\\" in text or text.startswith("~"):
        path = Path(text).expanduser()
        return path if path.suffix else path.with_suffix(".toml")
    stem = text[: -len(".toml")] if text.endswith(".toml") else text
    return user_presets_dir() / f"{stem}.toml"


class SaveAsScreen(ModalScreen[Path | None]):
    BINDINGS = [Binding("escape", "close", "Cancel")]

    def __init__(self, title: str, suggestion: str, current: Path | None = None) -> None:
        super().__init__(classes="dialog-screen")
        self._heading = title
        self._suggestion = suggestion
        self._current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Input(self._suggestion, id="save-as-name")
            yield Static(
                f"[dim]A name saves to {escape(str(user_presets_dir()))}/NAME.toml; "
                "a path (with / or ~) saves there. Enter saves, Esc cancels.[/]",
                id="save-as-hint",
            )
            yield Static("", id="save-as-error")

    def on_mount(self) -> None:
        self.query_one(".dialog").border_title = self._heading

    @on(Input.Submitted, "#save-as-name")
    def _submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            self.query_one("#save-as-error", Static).update("[$error]Type a name or a path.[/]")
            return
        path = target_path(event.value)
        if path.is_dir():
            self.query_one("#save-as-error", Static).update(f"[$error]{safe(path, 240)} is a folder.[/]")
            return
        if path.exists() and (self._current is None or path.resolve() != self._current.resolve()):
            def answered(answer: str | None) -> None:
                if answer == "overwrite":
                    self.dismiss(path)

            self.app.push_screen(
                ConfirmScreen("File exists", f"Replace {safe(path, 240)}?",
                              [("overwrite", "Replace", "r"), ("cancel", "Cancel", "c")]),
                answered,
            )
            return
        self.dismiss(path)

    def action_close(self) -> None:
        self.dismiss(None)
