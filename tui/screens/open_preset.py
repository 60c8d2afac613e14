"""Ctrl+O: pick a preset (shipped, user, recent files) or type a path; each shows its memory estimate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from runner import presets

from ..markup import safe
from ..recent import recent_paths
from ..worker_failures import ShowsWorkerFailures

# A function giving a one-line estimate ("~3.1 GiB fits") for a loaded config, or "" when unknown.
Summarise = Callable[[object], str]


@dataclass
class Estimated(Message):
    """One preset's estimate, from the estimating worker (a preset with errors says so)."""

    ident: str
    title: str
    description: str
    summary: str


class OpenScreen(ShowsWorkerFailures, ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "close", "Cancel")]

    def __init__(self, summarise: Summarise | None = None) -> None:
        super().__init__(classes="dialog-screen")
        self._summarise = summarise
        self._entries: list[tuple[str, str, str]] = []  # (option id / path, title, description)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog dialog-wide"):
            yield Input(placeholder="a preset name or a path to a .toml file, Enter opens it", id="open-path")
            yield OptionList(id="open-list")
            yield Static("[dim]↑↓ choose · Enter open · Esc cancel[/]")

    def on_mount(self) -> None:
        self.query_one(".dialog").border_title = "Open preset"
        seen: set[Path] = set()
        for info in presets.list_presets():
            seen.add(info.path.resolve())
            self._entries.append((str(info.path), f"{safe(info.name)} [dim]({info.origin})[/]", info.description))
        for path in recent_paths():
            if path.resolve() not in seen:
                seen.add(path.resolve())
                self._entries.append((str(path), f"{safe(path.name)} [dim](recent: {safe(path.parent, 200)})[/]", ""))
        options = self.query_one("#open-list", OptionList)
        options.add_options([Option(self._prompt(title, desc, ""), id=ident) for ident, title, desc in self._entries])
        options.focus()
        if self._summarise is not None:
            self._estimate_all()

    @staticmethod
    def _prompt(title: str, description: str, estimate: str) -> str:
        line = title + (f"  [$accent]{estimate}[/]" if estimate else "")
        return line + (f"\n  [dim]{safe(description, 200)}[/]" if description else "")

    @work(thread=True, exclusive=True, exit_on_error=False, group="open-estimates", name="estimate presets")
    def _estimate_all(self) -> None:
        """Load each preset and estimate it off the UI thread, filling in the list as results come."""
        for ident, title, desc in self._entries:
            loaded = presets.load(ident)
            summary = self._summarise(loaded.config) if loaded.config is not None else "[$error]has errors[/]"
            self.post_message(Estimated(ident, title, desc, summary))

    def on_estimated(self, message: Estimated) -> None:
        prompt = self._prompt(message.title, message.description, message.summary)
        self.query_one("#open-list", OptionList).replace_option_prompt(message.ident, prompt)

    @on(OptionList.OptionSelected, "#open-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    @on(Input.Submitted, "#open-path")
    def _typed(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(event.value.strip())

    def action_close(self) -> None:
        self.dismiss(None)
