"""The navigable list of editor groups (Model, Data, LoRA, ...), straight from `runner.groups.GROUPS`."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from runner.groups import GROUPS


class SectionList(OptionList):
    """Moving the highlight shows that group's fields in the form; groups with errors are marked."""

    HELP = """
## Sections
`↑`/`↓` pick a group of settings; `Tab` moves into its fields. A red `!` marks a group with
an invalid value or an error.
"""

    @dataclass
    class Picked(Message):
        group: str

    def __init__(self, **kwargs) -> None:
        super().__init__(*[Option(g, id=g) for g in GROUPS], **kwargs)
        self._flagged: frozenset[str] = frozenset()

    @on(OptionList.OptionHighlighted)
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        if event.option.id:
            self.post_message(self.Picked(event.option.id))

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.screen.focus_next()  # Enter on a group: go to its first field

    def flag(self, groups: set[str]) -> None:
        """Mark groups that hold errors (a cheap prompt replace, only when the set changes)."""
        flagged = frozenset(groups)
        if flagged == self._flagged:
            return
        self._flagged = flagged
        for group in GROUPS:
            self.replace_option_prompt(group, f"{group} [$error]![/]" if group in flagged else group)

    def select_group(self, group: str) -> None:
        self.highlighted = GROUPS.index(group)
