"""The form: the fields of one editor group, generated from `runner.schema.FIELDS`.

Rows whose `applies` condition is false for the current config are hidden, and a note says
how many are hidden and why, so nothing disappears silently.
"""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.markup import escape
from textual.widgets import Static

from runner.schema import FIELDS, Config, applies, get_value

from ..state import EditorState
from .field_row import FieldRow, row_id


def group_fields(group: str):
    return [spec for spec in FIELDS if spec.group == group]


class FieldForm(VerticalScroll, can_focus=False):
    HELP = """
## Form
`Tab`/`Shift+Tab` move between fields. Fields that do not apply to this config (LoRA settings
with LoRA off, 4-bit settings without 4-bit loading, architecture without from-scratch) are
hidden; the note at the bottom says which.
"""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.group: str | None = None
        self._shown: frozenset[str] = frozenset()

    async def show_group(self, group: str, state: EditorState, focus_key: str | None = None) -> None:
        """Build the rows of `group` that apply to this config (only those: fewer widgets, faster)."""
        self.group = group
        self.border_title = group
        self._shown = self._applicable(group, state.config)
        changed = {c.key for c in state.changes() if c.from_preset}
        rows = [
            FieldRow(spec, get_value(state.config, spec.key), changed=spec.key in changed,
                     invalid=state.invalid.get(spec.key))
            for spec in group_fields(group) if spec.key in self._shown
        ]
        with self.app.batch_update():
            await self.remove_children()
            await self.mount_all([*rows, Static(self._hidden_note(group, state.config), id="hidden-note")])
        row = self.row(focus_key) if focus_key else None
        if row is not None:
            row.focus_control()
        else:
            self.scroll_home(animate=False)

    @staticmethod
    def _applicable(group: str, config: Config) -> frozenset[str]:
        return frozenset(spec.key for spec in group_fields(group) if applies(spec, config))

    def rows(self) -> list[FieldRow]:
        return list(self.query(FieldRow))

    def row(self, key: str) -> FieldRow | None:
        found = self.query(f"#{row_id(key)}")
        return found.first(FieldRow) if found else None

    async def refresh_applicability(self, state: EditorState, focus_key: str | None = None) -> None:
        """Rebuild the rows when an edit changed which fields apply (LoRA on, 4-bit on, ...)."""
        if self.group is not None and self._applicable(self.group, state.config) != self._shown:
            await self.show_group(self.group, state, focus_key)

    @staticmethod
    def _hidden_note(group: str, config: Config) -> str:
        hidden: dict[str, int] = {}
        for spec in group_fields(group):
            if not applies(spec, config):
                hidden[spec.applies or ""] = hidden.get(spec.applies or "", 0) + 1
        return "\n".join(f"[dim]{n} field(s) hidden: they apply when {escape(_condition_text(cond))}[/]"
                         for cond, n in hidden.items())

    def refresh_changed(self, changed: set[str]) -> None:
        for row in self.rows():
            row.show_changed(row.spec.key in changed)


def _condition_text(cond: str) -> str:
    """'!model.from_scratch' -> 'Train from scratch is off', 'launch.strategy=deepspeed' -> 'Distribution is deepspeed'."""
    from runner.schema import help_text  # the one renderer of a field's help and conditions

    return help_text.condition_text(cond, labels=True)
