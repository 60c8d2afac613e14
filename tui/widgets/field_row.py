"""One config field in the form: its label, the widget its kind calls for, and its error.

The widget is chosen from the schema kind: Switch for booleans, Select for choices, a
one-item-per-line TextArea for lists, a text Input (parsed and checked by the schema) otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.message import Message
from textual.widgets import Input, Label, Select, Static, Switch

from runner.schema import FieldSpec

from ..values import InvalidValue, format_value, parse_text

CUSTOM_LIST = "__custom_list__"  # the Select option that reveals the list editor of a list_or_choice field


class FieldRow(Vertical):
    """A labelled editor for one schema field."""

    HELP = """
## Field
Type to edit; the value is checked as you type and a reason appears under the field when it is
not allowed. Lists take one item per line. `F1` shows the field's full explanation.
"""

    @dataclass
    class Edited(Message):
        """The user changed the field; `value` is the parsed value, or `error` says why it cannot be."""

        row: "FieldRow"
        key: str
        value: Any
        text: str
        error: str | None

    def __init__(self, spec: FieldSpec, value: Any, *, changed: bool = False, invalid: tuple[str, str] | None = None):
        super().__init__(id=_row_id(spec.key), classes="field-row")
        self.spec = spec
        self._value = value
        self._changed = changed
        self._invalid = invalid

    # --- building ---------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Label(self._label_markup(), classes="field-label", markup=True)
        yield from self._controls()
        error = Static("", classes="field-error", markup=True)
        if self._invalid:
            error.update(escape(self._invalid[1]))
            self.add_class("-invalid")
        yield error

    def _label_markup(self) -> str:
        unit = f" [dim]({escape(self.spec.unit)})[/]" if self.spec.unit else ""
        marker = "[$accent]●[/] " if self._changed else ""
        return f"{marker}{escape(self.spec.label)}{unit}"

    def _controls(self) -> ComposeResult:
        spec, value = self.spec, self._value
        if spec.kind == "bool":
            with Horizontal(classes="switch-line"):
                yield Switch(value=bool(value), classes="field-control")
                yield Label(_on_off(value), classes="switch-state")
        elif spec.kind == "choice":
            yield Select([(str(c), c) for c in spec.choices], value=value, allow_blank=False, compact=True,
                         classes="field-control")
        elif spec.kind in ("list", "tables"):
            yield self._list_editor(value)
        elif spec.kind == "list_or_choice":
            options = [(str(c), c) for c in spec.choices] + [("custom list…", CUSTOM_LIST)]
            is_list = isinstance(value, list)
            yield Select(options, value=CUSTOM_LIST if is_list else value, allow_blank=False, compact=True,
                         classes="field-control")
            editor = self._list_editor(value if is_list else [])
            editor.display = is_list
            yield editor
        else:
            text = self._invalid[0] if self._invalid else format_value(spec, value)
            yield Input(text, compact=True, classes="field-control", select_on_focus=False,
                        placeholder="(empty)" if spec.kind == "str" else spec.allowed())

    def _list_editor(self, items: list[str]):
        from textual.widgets import TextArea  # imported on first use: it is the costliest widget to load

        editor = TextArea(format_value(self.spec, items), compact=True, soft_wrap=True, show_line_numbers=False,
                          classes="field-control field-list", tab_behavior="focus")
        editor.border_subtitle = "one table per line: key = value, ..." if self.spec.kind == "tables" else "one per line"
        return editor

    # --- reacting to the user -------------------------------------------------------------------------
    def _post(self, value: Any, text: str, error: str | None = None) -> None:
        self.post_message(self.Edited(self, self.spec.key, value, text, error))

    @on(Switch.Changed)
    def _switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        self.query_one(".switch-state", Label).update(_on_off(event.value))
        self._post(event.value, str(event.value).lower())

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if self.spec.kind == "list_or_choice":
            editor = self.query_one(".field-list")
            editor.display = event.value == CUSTOM_LIST
            if event.value == CUSTOM_LIST:
                self._post(parse_text(self.spec, editor.text) or [], editor.text)
                return
        self._post(event.value, str(event.value))

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        event.stop()
        try:
            value = parse_text(self.spec, event.value)
        except InvalidValue as exc:
            self._post(None, event.value, str(exc))
            return
        self._post(value, event.value)

    def on_text_area_changed(self, event) -> None:  # by name, so TextArea loads only when a list is shown
        event.stop()
        text = event.text_area.text
        try:
            value = parse_text(self.spec, text)
        except InvalidValue as exc:  # a [[tables]] line that is not TOML yet
            self._post(None, text, str(exc))
            return
        if self.spec.kind == "list_or_choice" and not isinstance(value, list):
            value = [value]  # typed a choice's name into the custom list: still a one-item list
        self._post(value, text)

    # --- updates from the screen ---------------------------------------------------------------------
    def show_error(self, reason: str | None) -> None:
        self.set_class(bool(reason), "-invalid")
        for error in self.query(".field-error").results(Static):  # none when the row is being replaced
            error.update(escape(reason or ""))

    def show_changed(self, changed: bool) -> None:
        if changed != self._changed:
            self._changed = changed
            self.query_one(".field-label", Label).update(self._label_markup())

    def focus_control(self) -> None:
        self.query(".field-control").first().focus()

    def set_value(self, value: Any) -> None:
        """Show a value set elsewhere (revert, suggestion, restore) without echoing an edit back."""
        self._value = value
        self.show_error(None)
        from textual.widgets import TextArea

        with self.prevent(Switch.Changed, Select.Changed, Input.Changed, TextArea.Changed):
            if self.spec.kind == "bool":
                self.query_one(Switch).value = bool(value)
                self.query_one(".switch-state", Label).update(_on_off(value))
            elif self.spec.kind == "choice":
                self.query_one(Select).value = value
            elif self.spec.kind in ("list", "tables"):
                self.query_one(TextArea).load_text(format_value(self.spec, value))
            elif self.spec.kind == "list_or_choice":
                is_list = isinstance(value, list)
                self.query_one(Select).value = CUSTOM_LIST if is_list else value
                editor = self.query_one(TextArea)
                editor.display = is_list
                if is_list:
                    editor.load_text(format_value(self.spec, value))
            else:
                self.query_one(Input).value = format_value(self.spec, value)


def _on_off(value: Any) -> str:
    return "on" if value else "off"


def _row_id(key: str) -> str:
    return "field-" + key.replace(".", "--")


def row_id(key: str) -> str:
    return _row_id(key)
