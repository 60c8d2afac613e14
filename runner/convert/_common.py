"""Shared machinery for importers: consume source keys, set tunedeck keys, report the rest."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class Unmapped:
    key: str  # dotted path in the source file
    value: Any
    reason: str


@dataclass
class Imported:
    """A converted config: raw tunedeck sections, plus every source key that did not map."""

    source_format: str
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)
    unmapped: list[Unmapped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # decisions worth telling the user


class Mapper:
    """Walks a flat source dict: each key is either mapped (`take`) or reported (`skip`/left over)."""

    def __init__(self, source: dict[str, Any], result: Imported, prefix: str = ""):
        self.source = source
        self.result = result
        self.prefix = prefix
        self.seen: set[str] = set()

    def has(self, key: str) -> bool:
        return key in self.source and self.source[key] is not None

    def get(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        value = self.source.get(key, default)
        return default if value is None else value

    def set(self, target: str, value: Any) -> None:
        section, name = target.split(".", 1)
        self.result.raw.setdefault(section, {})[name] = value

    def take(self, key: str, target: str, convert: Callable[[Any], Any] = lambda v: v) -> None:
        """Map `key` to `target` (section.name) when present, converting its value."""
        if not self.has(key):
            self.seen.add(key)
            return
        self.set(target, convert(self.get(key)))

    def skip(self, key: str, reason: str) -> None:
        if key in self.source:
            self.seen.add(key)
            if self.source[key] is not None:
                self.result.unmapped.append(Unmapped(self.prefix + key, self.source[key], reason))

    def leftovers(self, reason: str = "no tunedeck equivalent") -> None:
        for key, value in self.source.items():
            if key not in self.seen and value is not None:
                self.result.unmapped.append(Unmapped(self.prefix + key, value, reason))


def as_list(value: Any) -> list[str]:
    """A module list written as a list or a comma-separated string."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(v) for v in value]


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "auto")
    return bool(value)
