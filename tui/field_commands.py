"""The command palette's field search: type part of a field's name, key or help, jump to the field.

"lora" lists the LoRA fields first (name matches), then fields whose help mentions LoRA; choosing
one shows its group and focuses it. Help text is matched by words, not fuzzily: a fuzzy match over
a paragraph finds almost every field for any short query.
"""

from __future__ import annotations

from functools import partial

from textual.command import Hit, Hits, Provider


class FieldCommands(Provider):
    """Fields of the editor as palette commands (only on the editor screen, once its preset is loaded)."""

    async def search(self, query: str) -> Hits:
        from .screens.editor import EditorScreen  # here: the editor screen module names this provider

        screen = self.screen
        if not isinstance(screen, EditorScreen) or not screen.ready:
            return
        from runner.schema import FIELDS

        words = query.lower().split()
        if not words:
            return
        matcher = self.matcher(query)
        for spec in FIELDS:
            name = f"{spec.label} ({spec.key})"
            if all(w in name.lower() for w in words):
                score = 0.5 + 0.5 * matcher.match(name)
            elif all(w in _help_text(spec) for w in words):
                score = 0.1 + 0.2 * matcher.match(name)  # below every name match
            else:
                continue
            yield Hit(score, matcher.highlight(name), partial(screen.jump_to_field, spec.key), text=name,
                      help=f"{spec.group} · {_first_sentence(spec.help.what)}")


def _help_text(spec) -> str:
    h = spec.help
    return " ".join((h.what, h.up, h.down, h.typical, h.advice or "")).lower()


def _first_sentence(text: str) -> str:
    head, dot, _ = text.partition(". ")
    return head + dot.strip() if dot else text
