"""The generations the runner wrote at each evaluation, newest first, so the user sees the model change."""

from __future__ import annotations

from collections import deque
from typing import Any

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

SHOWN = 30  # the newest samples rendered; older ones stay in events.jsonl


class SamplesPanel(VerticalScroll):
    HELP = """
## Samples
What the model generated for `generation.prompts` at each evaluation (and at the end), newest first.
"""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._shown: tuple[int, Any] = (0, None)

    def compose(self):
        yield Static("[dim]No samples yet: they appear at each evaluation when generation.prompts is set.[/]",
                     id="samples-body")

    def show(self, samples: deque) -> None:
        key = (len(samples), samples[-1] if samples else None)
        if key == self._shown:
            return
        self._shown = key
        if not samples:
            return
        text = Text()
        for event in list(samples)[-SHOWN:][::-1]:
            text.append(f"step {event.get('step', '?')} · {event.get('when', 'eval')}\n", style="bold")
            text.append(f"> {event.get('prompt', '')}\n", style="dim")
            text.append(f"{event.get('completion', '')}\n\n")
        self.query_one("#samples-body", Static).update(text)
