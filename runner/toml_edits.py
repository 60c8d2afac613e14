"""Changing one value of a preset file the way the user wrote it, and saying which comments it made stale.

A save rewrites only the values that changed (runner/presets.py `dumps`); this module decides how a changed
value is written and what happens to the comments beside it:

- Notation: the text the user typed (`3e-4` in the editor) is written as typed when it reads back to the
  same value. Without typed text, a number keeps the style the file used for it: a value written with an
  exponent (`3e-4`) is written with one again (`5e-4`, not 0.0005), one written with `_` separators
  (`10_000`) keeps them. Everything else is written as tomlkit writes it.
- Stale comments: a comment on the changed line (`lr = 3e-4  # tuned for batch 8`), and a comment line
  directly above the key that mentions the old value (`# 3e-4 suits a 7B model`), explain the OLD value.
  They are kept (nothing the user wrote is lost) but marked ` (stale: written for 3e-4)`, so no one reads
  them as explaining the new one. Setting the value back to what the comment was written for removes the
  mark. Help comments tunedeck wrote itself describe the field, not a value, and are never marked.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any, Iterable

import tomlkit
from tomlkit.container import Container
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import Comment, Item

_STALE = re.compile(r"\s*\(stale: written for (.+)\)$")


def stale_mark(old_text: str) -> str:
    return f" (stale: written for {old_text})"


def item_for(value: Any, typed: str | None = None, old_text: str | None = None) -> Any:
    """The TOML item for `value`: as `typed` when it reads back to the same value, else in `old_text`'s style."""
    if typed is not None:
        item = _typed_item(typed, value)
        if item is not None:
            return item
    if old_text is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        styled = _in_style(value, old_text)
        if styled is not None:
            return styled
    return value


def _typed_item(typed: str, value: Any) -> Item | None:
    """`typed` as a TOML item, only when it is one plain value equal to `value` (same type, no comment)."""
    text = typed.strip()
    if not text or "\n" in text or "#" in text or isinstance(value, (list, dict)):
        return None
    try:
        doc = tomlkit.parse(f"v = {text}")
    except (TOMLKitError, ValueError):
        return None
    if list(doc.keys()) != ["v"]:
        return None
    item = doc["v"]
    plain = item.unwrap() if isinstance(item, Item) else item
    if type(plain) is not type(value) or plain != value:
        return None
    return item


def _in_style(value: int | float, old_text: str) -> Item | None:
    old = old_text.strip().lower()
    if isinstance(value, float) and "e" in old and not old.lstrip("+-").startswith(("inf", "nan")):
        text = _exponent_text(value)
    elif isinstance(value, int) and "_" in old and not old.startswith(("0x", "0o", "0b")):
        text = f"{value:_}"
    else:
        return None
    item = tomlkit.parse(f"v = {text}")["v"]
    return item if item.unwrap() == value else None


def _exponent_text(value: float) -> str:
    """The shortest exponent notation that reads back to `value`: 0.0005 -> '5e-4', 12500.0 -> '1.25e4'."""
    for digits in range(17):
        text = f"{value:.{digits}e}"
        if float(text) == value:
            break
    mantissa, exponent = text.split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def replace_value(table: Any, name: str, value: Any, typed: str | None = None,
                  help_lines: Iterable[str] = ()) -> None:
    """Set `table[name]` to `value` in the file's notation, marking the comments that explained the old value."""
    old = table[name]
    old_text = old.as_string().strip() if isinstance(old, Item) else None
    table[name] = item_for(value, typed, old_text)
    if old_text is None:
        return
    new = table[name]
    new_text = new.as_string().strip() if isinstance(new, Item) else str(new)
    if isinstance(new, Item) and new.trivia.comment:
        new.trivia.comment = _marked(new.trivia.comment, old_text, new_text)
    helps = {line.strip() for line in help_lines}
    for comment in _comments_above(table, name):
        text = comment.trivia.comment
        body = text.lstrip("#").strip()
        if body in helps or not (_mentions(_STALE.sub("", body), old_text) or _STALE.search(body)):
            continue
        comment.trivia.comment = _marked(text, old_text, new_text)


def _marked(comment: str, old_text: str, new_text: str) -> str:
    """`comment` marked stale for `old_text`; an existing mark stays (it names what the comment was written
    for) and goes away when the value is back to that."""
    existing = _STALE.search(comment)
    if existing:
        return _STALE.sub("", comment) if _same_value(existing.group(1), new_text) else comment
    return comment + stale_mark(old_text)


def _same_value(a: str, b: str) -> bool:
    """Whether two TOML value texts mean the same value (`3e-4` and `0.0003` do)."""
    try:
        return a == b or tomllib.loads(f"v = {a}")["v"] == tomllib.loads(f"v = {b}")["v"]
    except (tomllib.TOMLDecodeError, ValueError):
        return False


def _mentions(text: str, value_text: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(value_text)}(?![\w.])", text) is not None


def _comments_above(table: Any, name: str) -> list[Comment]:
    """The comment lines directly above `name` in its table (no blank line between)."""
    container = table.value if hasattr(table, "value") and isinstance(table.value, Container) else table
    body = getattr(container, "body", None)
    if body is None:
        return []
    index = next((i for i, (key, _) in enumerate(body) if key is not None and key.key == name), None)
    found: list[Comment] = []
    if index is None:
        return found
    for key, item in reversed(body[:index]):
        if key is None and isinstance(item, Comment):
            found.append(item)
            continue
        break
    return found
