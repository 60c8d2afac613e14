"""Shown when saving or launching is refused: every problem that blocks it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from runner.problems import Problem

from ..widgets.problems_list import ProblemsList


class ProblemsScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,enter", "close", "Close")]

    def __init__(self, title: str, problems: list[Problem]) -> None:
        super().__init__(classes="dialog-screen")
        self._heading = title
        self._problems = problems

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            with VerticalScroll():
                yield ProblemsList(id="refused-problems")
            yield Static("[dim]Esc closes[/]")

    def on_mount(self) -> None:
        self.query_one(".dialog").border_title = self._heading
        self.query_one(ProblemsList).show(self._problems)

    def action_close(self) -> None:
        self.dismiss(None)
