"""F3: what differs from the loaded preset and from the defaults, each value revertible."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from runner.printable import printable
from runner.schema import FIELDS_BY_KEY, get_value

from ..markup import safe
from ..state import EditorState
from ..values import short_value

# Called with (key, value) to set a field from this dialog; the editor updates its form and gauge.
SetValue = Callable[[str, Any], Awaitable[str | None]]


class ChangesScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("r", "revert", "Revert to preset"),
        Binding("enter", "revert", "Revert to preset", show=False, priority=True),  # before the table's own Enter
        Binding("d", "default", "Reset to default"),
        Binding("escape,f3", "close", "Close"),
    ]

    def __init__(self, state: EditorState, set_value: SetValue) -> None:
        super().__init__(classes="dialog-screen")
        self._state = state
        self._set_value = set_value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog dialog-wide"):
            yield DataTable(id="changes-table", cursor_type="row", zebra_stripes=True)
            yield Static("[dim]● differs from the preset · r/Enter revert to preset · d reset to default · Esc close[/]")

    def on_mount(self) -> None:
        self.query_one(".dialog").border_title = f"Changes in {safe(self._state.name)}"
        table = self.query_one(DataTable)
        table.add_columns("", "Field", "Now", "Preset", "Default")
        self._fill()

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for change in self._state.changes():
            spec = FIELDS_BY_KEY[change.key]
            table.add_row("●" if change.from_preset else "", f"{spec.label} ({change.key})", _cell(change.value),
                          _cell(change.preset_value), _cell(change.default), key=change.key)
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))

    def _current_key(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    async def action_revert(self) -> None:
        key = self._current_key()
        if key:
            await self._set_value(key, get_value(self._state.baseline, key))
            self._fill()

    async def action_default(self) -> None:
        key = self._current_key()
        if key:
            await self._set_value(key, FIELDS_BY_KEY[key].default)
            self._fill()

    def action_close(self) -> None:
        self.dismiss(None)


def _cell(value: Any) -> str:
    """A value as a table cell: DataTable reads str cells as markup, so it goes through `safe` (which also
    escapes control characters and shortens it)."""
    text = printable(short_value(value), 0)
    return safe(text if len(text) <= 30 else text[:29] + "…", 0)
