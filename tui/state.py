"""The editor's document: the config being edited, the preset it came from, and what changed.

Only valid values ever enter `config`; text the user typed that does not validate is kept in
`invalid` (key -> (text, reason)) so it can be shown, and blocks saving and launching.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.schema import FIELDS, FIELDS_BY_KEY, Config, get_value

from .values import InvalidValue, with_value


@dataclass(frozen=True)
class Change:
    key: str
    value: Any
    preset_value: Any
    default: Any

    @property
    def from_preset(self) -> bool:
        return self.value != self.preset_value


@dataclass
class EditorState:
    config: Config
    baseline: Config  # the config as loaded (or last saved); "changed from preset" compares with it
    source: str  # what was opened: a preset name or a path, used to key autosave drafts
    name: str  # preset name shown in the title (the file stem)
    path: Path | None = None  # where Save writes; None for a shipped preset (Save asks for a name)
    document: Any = None  # the tomlkit document of the file, so Save keeps its comments
    shipped: bool = False
    invalid: dict[str, tuple[str, str]] = field(default_factory=dict)
    # What the user typed for each value set since the last save, so Save writes `3e-4` as typed, not 0.0003.
    typed: dict[str, str] = field(default_factory=dict)

    @property
    def dirty(self) -> bool:
        return bool(self.invalid) or self.config != self.baseline

    def set_value(self, key: str, value: Any, text: str | None = None) -> str | None:
        """Apply one edit. Returns the reason it was refused (and remembers the text), or None."""
        spec = FIELDS_BY_KEY[key]
        try:
            self.config = with_value(self.config, spec, value)
        except InvalidValue as exc:
            self.invalid[key] = (text if text is not None else str(value), str(exc))
            return str(exc)
        self.invalid.pop(key, None)
        if text is not None:
            self.typed[key] = text
        else:
            self.typed.pop(key, None)
        return None

    def mark_invalid(self, key: str, text: str, reason: str) -> None:
        self.invalid[key] = (text, reason)

    def revert(self, key: str) -> None:
        """Back to the value the preset had."""
        self.invalid.pop(key, None)
        self.set_value(key, get_value(self.baseline, key))

    @classmethod
    def from_loaded(cls, loaded: Any) -> EditorState:
        """The document of a preset that loaded into a config (`runner.presets.Loaded`)."""
        from runner.paths import shipped_presets_dir

        assert loaded.config is not None and loaded.path is not None
        path = loaded.path.resolve()
        shipped = path.parent == shipped_presets_dir().resolve()
        return cls(config=loaded.config, baseline=loaded.config, source=str(path), name=loaded.name,
                   path=path, document=loaded.document, shipped=shipped)

    def changes(self) -> list[Change]:
        """Fields whose value differs from the preset or from the schema default, in schema order."""
        out = []
        for spec in FIELDS:
            value = get_value(self.config, spec.key)
            preset = get_value(self.baseline, spec.key)
            if value != preset or value != spec.default:
                out.append(Change(spec.key, value, preset, spec.default))
        return out

    def mark_saved(self, path: Path | None, name: str, document: Any = None) -> None:
        self.baseline = self.config
        self.typed.clear()  # the file now holds what was typed
        self.path = path
        self.name = name
        self.shipped = False
        if document is not None:
            self.document = document
        if path is not None:
            self.source = str(path)
