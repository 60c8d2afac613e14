"""Preset files: TOML in, validated `Config` out, and back to TOML without losing comments.

- `load` never raises for user mistakes: it returns every problem found, each with
  file, line, column and section.key, so callers can print them all at once.
- `extends = "other"` starts from another preset (a name or a path relative to the file).
- `save` is atomic and keeps the user's comments and ordering; new files get each
  field's help written as comments above it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import textwrap
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import tomlkit
from pydantic import ValidationError
from tomlkit.exceptions import ParseError, TOMLKitError

from runner.atomic import atomic_write_text
from runner.paths import shipped_presets_dir, user_presets_dir
from runner.problems import ConfigError, Problem, did_you_mean
from runner.schema import FIELDS, FIELDS_BY_KEY, META_KEYS, SECTIONS, Config, FieldSpec, applies, get_value
from runner.validate import Context, check

SUFFIX = ".toml"
OVERRIDE_ORIGIN = "--set"
HELP_WIDTH = 96  # wrap help comments to this many columns


@dataclass
class Loaded:
    """The outcome of loading a preset: a config when it is usable, and every problem found."""

    config: Config | None
    problems: list[Problem]
    path: Path | None = None
    name: str = ""
    document: tomlkit.TOMLDocument | None = None
    raw: dict[str, Any] = field(default_factory=dict)  # merged plain values, before validation

    @property
    def ok(self) -> bool:
        return self.config is not None and not any(p.is_error for p in self.problems)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if not p.is_error]


@dataclass(frozen=True)
class PresetInfo:
    name: str
    path: Path
    description: str
    origin: str  # "shipped" or "user"


# --- finding presets -------------------------------------------------------------------------------


def preset_dirs() -> list[tuple[str, Path]]:
    """Where preset names are looked up, user presets first so they can shadow shipped ones."""
    return [("user", user_presets_dir()), ("shipped", shipped_presets_dir())]


def list_presets() -> list[PresetInfo]:
    found: dict[str, PresetInfo] = {}
    for origin, directory in preset_dirs():
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob(f"*{SUFFIX}")):
            if path.stem not in found:
                found[path.stem] = PresetInfo(path.stem, path, _read_description(path), origin)
    return sorted(found.values(), key=lambda p: (p.origin != "shipped", p.name))


def _read_description(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return str(tomllib.load(handle).get("description", ""))
    except (OSError, tomllib.TOMLDecodeError):
        return "(unreadable)"


def resolve(source: str | Path, relative_to: Path | None = None) -> Path | None:
    """A preset path from a path or a name; None when nothing matches."""
    text = str(source)
    candidates = [Path(text).expanduser()]
    if relative_to is not None:
        candidates.insert(0, relative_to / text)
    if "/" not in text and "\\" not in text:
        stem = text[: -len(SUFFIX)] if text.endswith(SUFFIX) else text
        candidates += [directory / f"{stem}{SUFFIX}" for _, directory in preset_dirs()]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    return None


# --- loading ---------------------------------------------------------------------------------------


@dataclass
class _Origins:
    """Which file (and its text) set each key, so problems can point at the right line."""

    files: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (file, text)

    def locate(self, key: str) -> tuple[str | None, int | None, int | None]:
        for probe in (key, key.split(".")[0]):
            if probe in self.files:
                file, text = self.files[probe]
                if file == OVERRIDE_ORIGIN:
                    return file, None, None
                line, col = find_line(text, probe)
                return file, line, col
        return None, None, None


def load(source: str | Path, overrides: Sequence[str] = (), context: Context | None = None) -> Loaded:
    """Load, resolve `extends`, apply overrides and validate. Never raises for user mistakes."""
    path = resolve(source)
    if path is None:
        return Loaded(None, [_not_found(str(source))])
    problems: list[Problem] = []
    origins = _Origins()
    raw, document = _load_chain(path, origins, problems, seen=())
    if document is None:
        return Loaded(None, problems, path, path.stem)
    for item in overrides:
        _apply_override(raw, item, origins, problems)
    unknown = _unknown_keys(raw, origins)
    problems += unknown
    config = None
    try:
        config = Config.model_validate(_without(raw, unknown), strict=True)
    except ValidationError as exc:
        problems += _field_problems(exc, raw, origins)
    if config is not None and unknown:
        config = None  # the file does not say what the user meant; never train a guess
    elif config is not None:
        for problem in check(config, context):
            problem.file, problem.line, problem.col = origins.locate(problem.key)
            problem.file = problem.file or str(path)
            problems.append(problem)
    for problem in problems:
        problem.file = problem.file or str(path)
    return Loaded(config, problems, path, path.stem, document, raw)


def require(source: str | Path, overrides: Sequence[str] = (), context: Context | None = None) -> Loaded:
    """Like `load`, but raise ConfigError when the config has errors."""
    loaded = load(source, overrides, context)
    if not loaded.ok:
        raise ConfigError(loaded.errors or loaded.problems)
    return loaded


def loads(text: str, name: str = "<text>") -> Config:
    """Parse and validate TOML text (no `extends`); raises ConfigError on any error."""
    problems: list[Problem] = []
    origins = _Origins()
    document = _parse(text, name, problems)
    if document is None:
        raise ConfigError(problems)
    raw = document.unwrap()
    for key in _keys_of(raw):
        origins.files.setdefault(key, (name, text))
    unknown = _unknown_keys(raw, origins)
    problems += unknown
    try:
        config = Config.model_validate(_without(raw, unknown), strict=True)
    except ValidationError as exc:
        problems += _field_problems(exc, raw, origins)
    else:
        problems += [p for p in check(config) if p.is_error]
        if not problems:
            return config
    for problem in problems:
        problem.file = problem.file or name
    raise ConfigError(problems)


def _without(raw: dict[str, Any], unknown: list[Problem]) -> dict[str, Any]:
    """`raw` minus the keys already reported as unknown, so each mistake is reported once."""
    out = copy.deepcopy(raw)
    for problem in unknown:
        section, _, name = problem.key.partition(".")
        if name and isinstance(out.get(section), dict):
            out[section].pop(name, None)
        elif not name:
            out.pop(section, None)
    return out


def _not_found(source: str) -> Problem:
    names = [p.name for p in list_presets()]
    guess = did_you_mean(Path(source).stem, names)
    hint = f"did you mean '{guess}'?" if guess else f"presets: {', '.join(names)}" if names else ""
    return Problem("error", f"no preset or file named '{source}'", file=source, hint=hint)


def _parse(text: str, file: str, problems: list[Problem]) -> tomlkit.TOMLDocument | None:
    try:
        return tomlkit.parse(text)
    except ParseError as exc:
        message = re.sub(r" at line \d+ col \d+$", "", str(exc)).replace("'\\x00'", "end of file")
        problems.append(Problem("error", f"malformed TOML: {message}", file=file, line=exc.line, col=exc.col + 1))
    except TOMLKitError as exc:  # e.g. a key defined twice
        problems.append(Problem("error", f"malformed TOML: {exc}", file=file))
    return None


def _load_chain(
    path: Path, origins: _Origins, problems: list[Problem], seen: tuple[Path, ...]
) -> tuple[dict[str, Any], tomlkit.TOMLDocument | None]:
    """The merged raw values of `path` and everything it extends, parents first."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem("error", f"cannot read the file: {exc}", file=str(path)))
        return {}, None
    document = _parse(text, str(path), problems)
    if document is None:
        return {}, None
    own = document.unwrap()
    base: dict[str, Any] = {}
    parent_name = own.get("extends", "")
    if parent_name:
        parent = resolve(parent_name, relative_to=path.parent) if isinstance(parent_name, str) else None
        line, col = find_line(text, "extends")
        if parent is None:
            problem = _not_found(str(parent_name))
            problem.file, problem.line, problem.col, problem.key = str(path), line, col, "extends"
            problems.append(problem)
        elif parent in seen or parent == path:
            chain = " -> ".join(p.name for p in (*seen, path, parent))
            problems.append(Problem("error", f"extends loops back on itself: {chain}", "extends", str(path), line, col))
        else:
            base, parent_doc = _load_chain(parent, origins, problems, (*seen, path))
            if parent_doc is None:
                return {}, None
            base.pop("description", None)  # a child describes itself
    for key in _keys_of(own):
        origins.files[key] = (str(path), text)
    return _merge(base, own), document  # the child's own `extends` replaces any inherited one


def _keys_of(raw: dict[str, Any]) -> Iterable[str]:
    for name, value in raw.items():
        yield name
        if isinstance(value, dict):
            for key in value:
                yield f"{name}.{key}"


def _merge(base: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for name, value in own.items():
        if isinstance(value, dict) and isinstance(out.get(name), dict):
            out[name].update(copy.deepcopy(value))
        else:
            out[name] = copy.deepcopy(value)
    return out


def parse_value(text: str) -> Any:
    """A `--set` value as TOML (1e-4, true, ["q_proj"], "x"); bare words are taken as strings."""
    try:
        return tomlkit.parse(f"v = {text}").unwrap()["v"]
    except (TOMLKitError, ParseError):
        return text


def _apply_override(raw: dict[str, Any], item: str, origins: _Origins, problems: list[Problem]) -> None:
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or "." not in key:
        problems.append(Problem("error", f"cannot read override '{item}'", file=OVERRIDE_ORIGIN,
                                hint="write section.key=value, e.g. training.learning_rate=1e-4"))
        return
    section, name = key.split(".", 1)
    raw.setdefault(section, {})
    if isinstance(raw[section], dict):
        raw[section][name] = parse_value(value.strip())
        origins.files[key] = (OVERRIDE_ORIGIN, "")


def _unknown_keys(raw: dict[str, Any], origins: _Origins) -> list[Problem]:
    problems = []
    owner = {spec.name: spec.section for spec in FIELDS}
    for name, value in raw.items():
        if name in META_KEYS:
            if not isinstance(value, str):
                problems.append(_at(origins, name, f"must be a string, got {_show(value)}"))
            continue
        if name not in SECTIONS:
            if name in owner:
                hint = f"it belongs in the [{owner[name]}] section"
            else:
                guess = did_you_mean(name, [*SECTIONS, *META_KEYS])
                hint = f"did you mean '{guess}'?" if guess else f"sections: {', '.join(SECTIONS)}"
            problems.append(_at(origins, name, "unknown key", hint))
            continue
        if not isinstance(value, dict):
            problems.append(_at(origins, name, f"must be a table ([{name}]), got {_show(value)}"))
            continue
        fields = SECTIONS[name].model_fields
        for key in value:
            if key in fields:
                continue
            guess = did_you_mean(key, fields)
            if guess:
                hint = f"did you mean '{guess}'?"
            elif key in owner:
                hint = f"'{key}' belongs in the [{owner[key]}] section"
            else:
                hint = f"`tunedeck explain {name}` lists the keys of [{name}]"
            problems.append(_at(origins, f"{name}.{key}", "unknown key", hint))
    return problems


def _at(origins: _Origins, key: str, message: str, hint: str = "") -> Problem:
    file, line, col = origins.locate(key)
    return Problem("error", message, key=key, file=file, line=line, col=col, hint=hint)


def _show(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (str, bool, list, dict)) or value is None else repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def _field_problems(exc: ValidationError, raw: dict[str, Any], origins: _Origins) -> list[Problem]:
    problems: dict[str, Problem] = {}
    for err in exc.errors():
        loc = [str(part) for part in err["loc"]]
        if len(loc) < 2:
            continue
        key = f"{loc[0]}.{loc[1]}"
        spec: FieldSpec | None = FIELDS_BY_KEY.get(key)
        if spec is None or key in problems:
            continue  # a union reports one error per branch; one message per key is enough
        value = raw.get(loc[0], {}).get(loc[1])
        hint = f"allowed: {spec.allowed()}"
        if spec.choices and isinstance(value, str):
            guess = did_you_mean(value, [str(c) for c in spec.choices])
            if guess:
                hint = f"did you mean '{guess}'? {hint}"
        file, line, col = origins.locate(key)
        problems[key] = Problem("error", f"{_show(value)} is not allowed", key=key, file=file, line=line, col=col, hint=hint)
    return list(problems.values())


_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_\-\"'. ]+?)\s*\]\s*(#.*)?$")


def find_line(text: str, key: str) -> tuple[int | None, int | None]:
    """Line and column (1-based) where `section.key`, a `[section]` header or a top-level key is written."""
    section, _, name = key.partition(".")
    if not name:
        section, name = "", key
    current = ""
    header_at: tuple[int, int] | None = None
    key_pattern = re.compile(rf"^(\s*)[\"']?{re.escape(name)}[\"']?\s*=")
    dotted = re.compile(rf"^(\s*){re.escape(section)}\s*\.\s*{re.escape(name)}\s*=") if section else None
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            current = header.group(1).strip().strip("\"'")
            if current == key and header_at is None:
                header_at = (number, line.index("[") + 1)
            continue
        if current == section:
            match = key_pattern.match(line)
            if match:
                return number, len(match.group(1)) + 1
        if dotted is not None and current == "":
            match = dotted.match(line)
            if match:
                return number, len(match.group(1)) + 1
    return header_at if header_at else (None, None)


# --- saving ----------------------------------------------------------------------------------------


def config_digest(config: Config) -> str:
    """A stable hash of what a config trains (its description and `extends` do not count)."""
    payload = config.model_dump(mode="json", exclude={"description", "extends"})
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def differences(config: Config, baseline: Config) -> list[tuple[FieldSpec, Any, Any]]:
    """(field, value, baseline value) for every field where the two configs differ."""
    return [
        (spec, get_value(config, spec.key), get_value(baseline, spec.key))
        for spec in FIELDS
        if get_value(config, spec.key) != get_value(baseline, spec.key)
    ]


def baseline_for(config: Config, relative_to: Path | None = None) -> Config:
    """What a file's own keys are applied on top of: its `extends` parent, or the defaults."""
    if config.extends:
        parent = resolve(config.extends, relative_to)
        if parent is not None:
            loaded = load(parent)
            if loaded.config is not None:
                return loaded.config
    return Config()


def dumps(
    config: Config,
    document: tomlkit.TOMLDocument | None = None,
    with_help: bool = True,
    relative_to: Path | None = None,
) -> str:
    """TOML text for `config`.

    With `document` (the file as loaded), values are updated in place so comments and
    ordering survive; keys the file lacks are added only where the config differs
    from what the file builds on. Without it a fresh file is written: every field
    (or, with `extends`, every changed field), each with its help as a comment.
    """
    baseline = baseline_for(config, relative_to)
    if document is None:
        return _fresh_document(config, baseline, with_help).as_string()
    doc = copy.deepcopy(document)
    for key in META_KEYS:
        value = getattr(config, key)
        if key in doc:
            if doc[key] != value:
                doc[key] = value
        elif value:
            doc = _with_top_key(doc, key, value)
    for section in SECTIONS:
        for spec in (s for s in FIELDS if s.section == section):
            value = _toml_value(get_value(config, spec.key))
            table = doc.get(section)
            if table is not None and spec.name in table:
                if table[spec.name] != value:
                    table[spec.name] = value
                continue
            if get_value(config, spec.key) == get_value(baseline, spec.key):
                continue
            if table is None:
                table = tomlkit.table()
                doc.add(section, table)
            if with_help:
                for line in help_comment_lines(spec):
                    table.add(tomlkit.comment(line))
            table.add(spec.name, value)
    return doc.as_string()


def save(
    config: Config,
    path: str | Path,
    *,
    document: tomlkit.TOMLDocument | None = None,
    with_help: bool = True,
) -> Path:
    """Atomically write `config` to `path` (keeping `document`'s comments when given)."""
    target = Path(path)
    text = dumps(config, document, with_help=with_help, relative_to=target.parent)
    tomllib.loads(text)  # never write a file we could not read back
    atomic_write_text(target, text)
    return target


def _with_top_key(doc: tomlkit.TOMLDocument, key: str, value: Any) -> tomlkit.TOMLDocument:
    """`doc` with a top-level key added before the first table (TOML requires bare keys to come first)."""
    body = doc.body
    index = next((i for i, (_, item) in enumerate(body) if isinstance(item, (tomlkit.items.Table, tomlkit.items.AoT))), len(body))
    new = tomlkit.document()
    for k, item in body[:index]:
        new.add(k, item) if k is not None else new.add(item)
    new.add(key, value)
    for k, item in body[index:]:
        new.add(k, item) if k is not None else new.add(item)
    return new


def _toml_value(value: Any) -> Any:
    if isinstance(value, list):
        array = tomlkit.array()
        array.extend(value)
        return array
    return value


def help_lines(spec: FieldSpec) -> list[tuple[str, str]]:
    """(label, text) pairs of a field's help, in reading order, empty parts left out."""
    h = spec.help
    raise_label, lower_label = ("On", "Off") if spec.kind == "bool" else ("Raise", "Lower")
    parts = [("", h.what)]
    for label, text in ((raise_label, h.up), (lower_label, h.down)):
        text = re.sub(r"^(On|Off): ", "", text)
        if text:
            parts.append((label, text))
    parts.append(("Typical", h.typical.rstrip(".") + "."))
    if h.advice:
        parts.append(("Advice", h.advice))
    return parts


def help_comment_lines(spec: FieldSpec) -> list[str]:
    """A field's help wrapped as TOML comment lines (without the leading '#')."""
    lines: list[str] = []
    for label, text in help_lines(spec):
        text = f"{label}: {text}" if label else text
        lines += textwrap.wrap(text, HELP_WIDTH - 2, subsequent_indent="  ")
    return lines


def _fresh_document(config: Config, baseline: Config, with_help: bool) -> tomlkit.TOMLDocument:
    doc = tomlkit.document()
    doc.add(tomlkit.comment("tunedeck preset. Every key is optional; anything left out takes its default."))
    doc.add(tomlkit.comment("Field reference: `tunedeck show FILE`, JSON Schema: `tunedeck schema`."))
    doc.add(tomlkit.nl())
    doc.add("description", config.description)
    if config.extends:
        doc.add("extends", config.extends)
    only_changes = bool(config.extends)
    for section in SECTIONS:
        table = tomlkit.table()
        for spec in (s for s in FIELDS if s.section == section):
            value = get_value(config, spec.key)
            if only_changes and value == get_value(baseline, spec.key):
                continue
            if spec.applies == "model.from_scratch" and not applies(spec, config) and value == spec.default:
                continue  # architecture fields of a pretrained model would read as if they were its shape
            if with_help:
                if len(table):
                    table.add(tomlkit.nl())
                for line in help_comment_lines(spec):
                    table.add(tomlkit.comment(line))
            table.add(spec.name, _toml_value(value))
        if len(table):
            doc.add(tomlkit.nl())
            doc.add(section, table)
    return doc


def require_config(source: str | Path, overrides: Sequence[str] = (), context: Context | None = None) -> Config:
    """The validated Config of a preset, or ConfigError."""
    loaded = require(source, overrides, context)
    assert loaded.config is not None
    return loaded.config
