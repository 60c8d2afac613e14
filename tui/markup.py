"""Input shown on screen: runner's one control-character escaper, then Textual markup escaping.

A preset name, a path, a key or a problem message can hold anything a file can; shown raw it could
move the cursor or restyle the screen (control characters), or be read as markup (`[b]`, `[@click]`).
Every widget that shows such a value builds its markup with `safe`.
"""

from __future__ import annotations

from runner.printable import ECHO_LIMIT, as_markup, printable


def safe(value: object, limit: int = ECHO_LIMIT) -> str:
    """`value` as Textual markup that shows exactly its (escaped, shortened) text.

    Every `[` is escaped, not only those that look like tags: textual.markup.escape leaves `[2J` alone,
    and an unclosed bracket before a tag then stops the tag's escape from being undone.
    """
    return as_markup(printable(value, limit))
