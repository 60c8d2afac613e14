"""Turning what the user typed into field values, and field values back into text, using the schema.

Per-field validation runs the field's own section model (pydantic), so the limits and types
checked here are exactly the ones `runner.schema` declares; nothing is restated.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from runner.schema import Config, FieldSpec

_INT = re.compile(r"[+-]?\d+")


class InvalidValue(ValueError):
    """The text cannot become a value of this field; the message says why and what is allowed."""


def parse_text(spec: FieldSpec, text: str) -> Any:
    """The value a text input stands for, by the field's kind (numbers parsed, strings kept)."""
    text = text.strip() if spec.kind != "str" else text
    if spec.kind == "int":
        if not _INT.fullmatch(text):
            raise InvalidValue(f"not a whole number; allowed: {spec.allowed()}")
        return int(text)
    if spec.kind in ("float", "number"):
        if spec.kind == "number" and _INT.fullmatch(text):
            return int(text)  # "number" fields treat whole numbers as counts (warmup_steps: 10 vs 0.1)
        try:
            return float(text)
        except ValueError:
            raise InvalidValue(f"not a number; allowed: {spec.allowed()}") from None
    if spec.kind == "tables":
        return [_table_line(spec, line) for line in text.splitlines() if line.strip()]
    if spec.kind in ("list", "list_or_choice"):
        items = [line.strip() for line in text.splitlines() if line.strip()]
        if spec.kind == "list_or_choice" and len(items) == 1 and items[0] in spec.choices:
            return items[0]
        return items
    return text


def _table_line(spec: FieldSpec, line: str) -> dict[str, Any]:
    """One `[[section.key]]` table written on one line as TOML keys: `path = "a.jsonl", weight = 2.0`."""
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    try:
        return dict(tomlkit.parse(f"t = {{ {line.strip().strip('{}')} }}").unwrap()["t"])
    except (TOMLKitError, ValueError) as exc:
        raise InvalidValue(f"cannot read {line.strip()!r} as TOML keys ({exc}); write one table per line, "
                           'e.g. path = "data/chat.jsonl", format = "chat", weight = 2.0') from None


def format_value(spec: FieldSpec, value: Any) -> str:
    """The text shown in an input for a value (lists one item per line)."""
    if spec.kind == "tables":
        import tomlkit

        lines = []
        for table in value or []:
            items = table.items() if isinstance(table, dict) else table.model_dump(exclude_defaults=True).items()
            lines.append(", ".join(f"{k} = {tomlkit.item(v).as_string()}" for k, v in items))
        return "\n".join(lines)
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    if isinstance(value, float):
        return _format_float(value)
    return str(value)


def _format_float(value: float) -> str:
    return repr(value)  # shortest text that reads back to the same float (5e-05, 3.0)


def short_value(value: Any) -> str:
    """A one-line rendering for tables (lists joined with commas)."""
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, float):
        return _format_float(value)
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value) if value != "" else '""'


def with_value(config: Config, spec: FieldSpec, value: Any) -> Config:
    """A copy of `config` with one field changed, validated by its section model.

    Raises InvalidValue with pydantic's reason plus the schema's allowed values.
    """
    section = getattr(config, spec.section)
    data = section.model_dump()
    data[spec.name] = value
    try:
        new_section = type(section).model_validate(data)
    except ValidationError as exc:
        reasons = [e["msg"] for e in exc.errors() if e["loc"] and e["loc"][0] == spec.name]
        reason = reasons[0] if reasons else str(exc.errors()[0]["msg"])
        reason = _lower_first(reason).removeprefix("input should be ")
        raise InvalidValue(f"should be {reason}; allowed: {spec.allowed()}") from None
    return config.model_copy(update={spec.section: new_section})


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
