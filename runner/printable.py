"""The one place that makes text from input safe to print: control characters escaped, long values shortened.

Anything echoed from a preset, a `--set` value, a path or a run's name goes through `printable` before
it reaches a terminal (the CLI) or a screen (the TUI adds Textual markup escaping on top, in
tui/markup.py). A key holding ANSI escapes must show as `\\x1b[2J`, not clear the screen.

Escaped: C0 and C1 control characters and DEL (including newline and tab, since an echoed value sits on
one line), the Unicode line/paragraph separators, and the bidirectional overrides that can make text
read differently from what it is. Everything else (accents, CJK, emoji) is printed as it is.
"""

from __future__ import annotations

import re

# One value echoed in a message; longer ones keep their start and end around a count of what was cut.
ECHO_LIMIT = 120

_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
_UNSAFE_KEEP_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str, keep_lines: bool = False) -> str:
    """`text` with every control character written as an escape (`\\x1b`, `\\n`, `\\u202e`).

    keep_lines: leave newlines and tabs alone, for multi-line output built by tunedeck itself.
    """
    pattern = _UNSAFE_KEEP_LINES if keep_lines else _UNSAFE
    return pattern.sub(_escape_one, text)


def shorten(text: str, limit: int = ECHO_LIMIT) -> str:
    """`text` cut to about `limit` characters, keeping its start and end: `abc…(9,000 more)…xyz`."""
    if limit <= 0 or len(text) <= limit:
        return text
    keep = max(8, limit - 24)
    head, tail = keep * 2 // 3, keep // 3
    return f"{text[:head]}…({len(text) - head - tail:,} characters)…{text[len(text) - tail:]}"


def printable(value: object, limit: int = ECHO_LIMIT) -> str:
    """One value from input as it may be echoed: control characters escaped, then shortened.

    Escaping comes first so that a long run of escapes is shortened too, and an escape is never
    cut in half into a raw control character.
    """
    return shorten(escape_controls(str(value)), limit)


def as_markup(text: str) -> str:
    """`text` as Textual markup that shows exactly it: every `[` escaped, not only those that look like tags
    (textual.markup.escape leaves `[2J` alone, and an unclosed bracket before a tag then stops the tag's
    escape from being undone). Control characters are `printable`'s job, done before this."""
    return text.replace("[", "\\[")


def code_markup(text: str) -> str:
    """`text` as escaped Textual markup, its `code` spans (commands, file and field names) highlighted
    instead of showing their backticks; an unpaired backtick stays as written."""
    pieces = text.split("`")
    if len(pieces) % 2 == 0 or any(p.endswith("\\") for p in pieces[:-1]):
        return as_markup(text)  # an odd number of backticks (no pairing to trust), or a backslash before a tag
    return "".join(f"[$accent]{as_markup(p)}[/]" if i % 2 else as_markup(p) for i, p in enumerate(pieces))


def first_control(text: str, allowed: str = "") -> str | None:
    """The first character of `text` that `escape_controls` would escape (tab and newline included), except
    those in `allowed`; None when there is none."""
    for match in _UNSAFE.finditer(text):
        if match.group() not in allowed:
            return match.group()
    return None


def safe_lines(text: str, limit: int = 0) -> str:
    """Multi-line text put together by tunedeck: newlines and tabs kept, every other control escaped."""
    out = escape_controls(text, keep_lines=True)
    return shorten(out, limit) if limit else out
