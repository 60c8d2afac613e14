"""Problems found in a config: errors block saving and launching, warnings only inform.

A problem says where (file, line, column, section.key), what is wrong and what is
allowed, so the CLI and the editor can show it without a traceback.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Iterable, Literal

from runner.printable import printable

Severity = Literal["error", "warning"]


# How much of each part of a problem line is printed (a value quoted in a message is shortened first).
FILE_LIMIT, KEY_LIMIT, MESSAGE_LIMIT, HINT_LIMIT = 240, 100, 400, 1000


@dataclass
class Problem:
    severity: Severity
    message: str
    key: str = ""  # "section.name", "section" or "" for the whole file
    file: str | None = None
    line: int | None = None  # 1-based
    col: int | None = None  # 1-based
    hint: str = ""  # what to do about it ("did you mean ...", "allowed: ...")

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def format(self) -> str:
        """`file:line:col: error: section.key: message (hint)` with the parts that are known.

        Every part may come from input (a key with ANSI escapes, a 10 MB value, a path): control
        characters are escaped and each part is shortened, so the line is safe to print anywhere.
        """
        where = ""
        if self.file:
            where = printable(self.file, FILE_LIMIT)
            if self.line:
                where += f":{self.line}"
                if self.col:
                    where += f":{self.col}"
            where += ": "
        key = f"{printable(self.key, KEY_LIMIT)}: " if self.key else ""
        hint = f" ({printable(self.hint, HINT_LIMIT)})" if self.hint else ""
        return f"{where}{self.severity}: {key}{printable(self.message, MESSAGE_LIMIT)}{hint}"


@dataclass
class ConfigError(Exception):
    """Raised where a config with errors cannot be used; carries every problem found."""

    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(p.format() for p in self.problems)


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelt or abbreviated word, if one is close enough.

    In order: the same word in another case or spelling of separators (`Learning-Rate`); an
    abbreviation, word by word (`grad_accum_steps` for gradient_accumulation_steps, `lr_sched`);
    the candidate that holds the word as a whole part (`warmup` in warmup_steps); then spelling
    distance (`lr_schedular`, `learnig_rate`).
    """
    pool = [c for c in dict.fromkeys(candidates) if isinstance(c, str)]
    if not word or not pool or len(word) > 200:
        return None
    norm = _normal(word)
    for cand in pool:
        if _normal(cand) == norm:
            return cand
    parts = _parts(word)
    abbreviated = [c for c in pool if _abbreviates(parts, _parts(c))]
    if len(abbreviated) == 1:
        return abbreviated[0]
    holding = [c for c in pool if len(norm) >= 4 and norm in _parts(c)]
    if len(holding) == 1:
        return holding[0]
    by_norm = {_normal(c): c for c in pool}
    matches = difflib.get_close_matches(norm, list(by_norm), n=1, cutoff=0.6)
    if matches:
        return by_norm[matches[0]]
    if abbreviated:  # several abbreviate it: the shortest is the likeliest (`lr` -> learning_rate)
        return min(abbreviated, key=len)
    return None


def _normal(word: str) -> str:
    return re.sub(r"[\s\-.]+", "_", word.strip().lower())


def _parts(word: str) -> list[str]:
    return [p.lower() for p in re.split(r"[_\s\-.]+|(?<=[a-z])(?=[A-Z])", word.strip()) if p]


def _abbreviates(short: list[str], long: list[str]) -> bool:
    """Each part of `short` starts the matching part of `long`, in order, with parts of `long` skipped
    only at its end or between matches (`grad_accum` -> gradient_accumulation_steps, `lr` -> learning_rate)."""
    if not short or len(short) > len(long):
        return False
    if len(short) == 1 and len(short[0]) <= 3:  # `lr`: the initials of the words
        initials = "".join(p[0] for p in long)
        return short[0] == initials or (len(long) > 2 and initials.startswith(short[0]) and len(short[0]) >= 2)
    i = 0
    for part in short:
        while i < len(long) and not _shortens(part, long[i]):
            i += 1
        if i == len(long):
            return False
        i += 1
    return sum(len(p) for p in short) >= 3


def _shortens(part: str, word: str) -> bool:
    """`grad` shortens gradient (a prefix), `ckpt` shortens checkpointing (same first letter, then its
    letters in order)."""
    if word.startswith(part):
        return True
    if len(part) < 3 or part[0] != word[0]:
        return False
    letters = iter(word)
    return all(ch in letters for ch in part)
