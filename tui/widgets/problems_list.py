"""Cross-field errors and warnings (and fields whose text is invalid), refreshed after each edit."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.widgets import Static

from ..markup import safe

if TYPE_CHECKING:  # the list paints in the first frame, before the schema is imported
    from runner.problems import Problem


class ProblemsList(Static):
    HELP = """
## Problems
Errors (red) block saving and launching; warnings (yellow) only advise. Fix a field and its
entry disappears.
"""

    def show(self, problems: list[Problem]) -> None:
        from runner.problems import HINT_LIMIT, KEY_LIMIT, MESSAGE_LIMIT
        from runner.schema import FIELDS_BY_KEY

        errors = sum(p.is_error for p in problems)
        warnings = len(problems) - errors
        self.set_class(errors > 0, "-errors")
        self.set_class(not problems, "-clean")
        self.border_title = f"Problems: {errors} error(s), {warnings} warning(s)" if problems else "No problems"
        lines = []
        for p in sorted(problems, key=lambda p: not p.is_error):
            colour = "$error" if p.is_error else "$warning"
            spec = FIELDS_BY_KEY.get(p.key)
            key = f"[b]{safe(spec.label if spec else p.key, KEY_LIMIT)}[/b]: " if p.key else ""
            hint = f" [dim]({safe(p.hint, HINT_LIMIT)})[/]" if p.hint else ""
            lines.append(f"[{colour}]{'✗' if p.is_error else '!'}[/] {key}{safe(p.message, MESSAGE_LIMIT)}{hint}")
        self.update("\n".join(lines))
