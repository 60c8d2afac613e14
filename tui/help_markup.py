"""A widget's HELP text (a little markdown) as Textual console markup, for the help panel."""

from __future__ import annotations

from runner.printable import code_markup


def markdownish(text: str) -> str:
    """'## Title' lines bold, `keys` highlighted, wrapped paragraphs joined (the panel rewraps them)."""
    out: list[str] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:  # HELP strings are wrapped in the source; rewrap each paragraph here
            out.append(code_markup(" ".join(paragraph)))  # `keys` as the field help shows code spans
            paragraph.clear()

    for line in text.strip().splitlines():
        if line.startswith("#"):
            flush()
            out.append(f"[b]{line.lstrip('# ')}[/b]")
        elif not line.strip():
            flush()
        else:
            paragraph.append(line.strip())
    flush()
    return "\n".join(out)
