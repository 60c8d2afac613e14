"""Preset files: TOML in, validated `Config` out, and back to TOML without losing comments.

- `load` never raises for user mistakes: it returns every problem found, each with
  file, line, column and section.key, so callers can print them all at once.
- `extends = "other"` starts from another preset (a name or a path relative to the file).
- `save` is atomic and keeps the user's comments and ordering; new files get each
  field's help written as comments above it.
"""

from __future__ import annotations

import codecs
import copy
import datetime as dt
import functools
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import tomlkit
from pydantic import ValidationError
from tomlkit.exceptions import ParseError, TOMLKitError

from runner import toml_edits
from runner.atomic import atomic_write_text
from runner.field_names import hint_for
from runner.paths import shipped_presets_dir, user_presets_dir
from runner.printable import printable
from runner.problems import ConfigError, Problem, did_you_mean
from runner.schema import FIELDS, FIELDS_BY_KEY, META_KEYS, SECTIONS, Config, FieldSpec, applies, get_value, help_text
from runner.validate import Context, check

SUFFIX = ".toml"
OVERRIDE_ORIGIN = "--set"
MAX_PRESET_BYTES = 16 * 1024 * 1024  # far above any real preset; a bigger file is a mistake, not a config


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
        if _is_file(candidate):
            return candidate.resolve()
    return None


def _is_file(path: Path) -> bool:
    """Path.is_file that says no, rather than raising, for names no file system takes (too long, NUL)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


# --- loading ---------------------------------------------------------------------------------------


@dataclass
class _Origins:
    """Which file (and its text) set each key, so problems can point at the right line."""

    files: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (file, text)

    def locate(self, key: str) -> tuple[str | None, int | None, int | None]:
        for probe in (key, key.split(".")[0]):
            if probe in self.files:
                file, text = self.files[probe]
                if file.startswith(OVERRIDE_ORIGIN):
                    return file, None, None
                line, col = find_line(text, probe)
                return file, line, col
        return None, None, None


def load(source: str | Path, overrides: Sequence[str] = (), context: Context | None = None) -> Loaded:
    """Load, resolve `extends`, apply overrides and validate. Never raises for user mistakes."""
    path = resolve(source)
    if path is None:
        problem = _not_a_file(str(source)) or _not_found(str(source))
        problem.file = problem.file or str(source)
        return Loaded(None, [problem])
    problems: list[Problem] = []
    origins = _Origins()
    raw, document = _load_chain(path, origins, problems, seen=())
    if document is None:
        return Loaded(None, problems, path, path.stem)
    for item in overrides:
        _apply_override(raw, item, origins, problems)
    config, found = _validated(raw, origins, context)
    problems += found
    for problem in problems:
        problem.file = problem.file or str(path)
    return Loaded(config, in_file_order(problems), path, path.stem, document, raw)


def _validated(raw: dict[str, Any], origins: _Origins, context: Context | None) -> tuple[Config | None, list[Problem]]:
    """Every problem of `raw` in one pass: unknown keys, per-field values and cross-field rules.

    Keys that are unknown or hold a bad value are set aside (they take their defaults) so the
    cross-field rules still run over the rest; a rule that blames a set-aside key is not repeated.
    The config is returned only when every key was understood: a guess is never trained.
    """
    problems = _unknown_keys(raw, origins)
    bad = {p.key for p in problems}
    values = _without(raw, problems)
    partial: Config | None = None
    for _ in range(5):  # each pass sets aside the keys pydantic refused; one or two passes are usual
        try:
            partial = Config.model_validate(values, strict=True)
            break
        except ValidationError as exc:
            found = _field_problems(exc, raw, origins)
            found = [p for p in found if p.key not in bad]
            if not found:
                problems.append(Problem("error", f"the config cannot be read: {_first_error(exc)}"))
                break
            problems += found
            bad |= {p.key for p in found}
            values = _without(values, found)
    usable = partial is not None and not problems
    if partial is not None:
        # A rule that names a set-aside key judged its default, not what the user wrote: leave it out.
        mentions = re.compile(r"\b(" + "|".join(re.escape(k.rsplit(".", 1)[-1]) for k in bad) + r")\b") if bad else None
        for problem in check(partial, context):
            if problem.key in bad or (mentions and mentions.search(f"{problem.message} {problem.hint}")):
                continue
            problem.file, problem.line, problem.col = origins.locate(problem.key)
            problems.append(problem)
    return (partial if usable else None), problems


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "not valid"
    where = ".".join(str(part) for part in errors[0]["loc"])
    return f"{where}: {errors[0]['msg']}" if where else errors[0]["msg"]


def in_file_order(problems: list[Problem]) -> list[Problem]:
    """Problems by file (in the order files first appear), then line; those without a line last."""
    rank: dict[str | None, int] = {}
    for problem in problems:
        rank.setdefault(problem.file, len(rank))
    return sorted(problems, key=lambda p: (rank[p.file], p.line is None, p.line or 0, p.col or 0))


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
    config, found = _validated(raw, origins, None)
    problems += [p for p in found if p.is_error]
    if config is not None and not problems:
        return config
    for problem in problems:
        problem.file = problem.file or name
    raise ConfigError(in_file_order(problems))


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


def _parse(text: str, file: str, problems: list[Problem], echo: bool = True) -> tomlkit.TOMLDocument | None:
    """The parsed document, or None with the problem recorded (with its line whenever one is known).

    echo=False (a file reached through `extends`): say where it is malformed, never what it holds.
    """
    try:
        document = tomlkit.parse(text)
        document.unwrap()  # values tomlkit parses lazily (dates, big numbers) fail here, not later
        return document
    except ParseError as exc:
        message = re.sub(r" at line \d+ col \d+$", "", str(exc)).replace("'\\x00'", "end of file")
        line, col = exc.line, exc.col + 1
        if "already exists" in message:  # tomlkit points past the second definition; tomllib points at it
            line, col = _tomllib_position(text) if _tomllib_position(text)[0] else (line, col)
    except RecursionError:
        message, (line, col) = "nested too deeply (arrays or tables inside each other)", _tomllib_position(text)
    except Exception as exc:  # noqa: BLE001 - a parser failing on input is a problem with the input
        message, (line, col) = str(exc) or type(exc).__name__, _tomllib_position(text)
    if not echo:
        message = "not valid TOML (nothing of the file is shown, since it was reached through extends)"
    problems.append(Problem("error", f"malformed TOML: {message}", file=file, line=line, col=col))
    return None


def _tomllib_position(text: str) -> tuple[int | None, int | None]:
    """Line and column of the first TOML error, from the standard library's parser (tomlkit gives none for
    a key defined twice)."""
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"at line (\d+), column (\d+)", str(exc))
        if match:
            return int(match.group(1)), int(match.group(2))
    except Exception:  # noqa: BLE001 - only a position is wanted here
        pass
    return None, None


def _read_text(path: Path, problems: list[Problem]) -> str | None:
    """The file as text (UTF-8, a BOM allowed), or None with the reason recorded (an encoding error's line)."""
    try:
        size = path.stat().st_size
        if size > MAX_PRESET_BYTES:
            problems.append(Problem("error", f"the file is {size:,} bytes; a preset is at most {MAX_PRESET_BYTES:,}",
                                    file=str(path), hint="is this the right file?"))
            return None
        data = path.read_bytes()
    except OSError as exc:
        problems.append(Problem("error", f"cannot read the file: {exc.strerror or exc}", file=str(path)))
        return None
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        utf16 = data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
        problems.append(Problem("error", f"not UTF-8 text: byte 0x{data[exc.start]:02x} is not valid UTF-8",
                                file=str(path), line=line, col=col,
                                hint="the file is UTF-16; save it as UTF-8" if utf16 else "save the file as UTF-8"))
        return None


def _load_chain(
    path: Path, origins: _Origins, problems: list[Problem], seen: tuple[Path, ...]
) -> tuple[dict[str, Any], tomlkit.TOMLDocument | None]:
    """The merged raw values of `path` and everything it extends, parents first."""
    text = _read_text(path, problems)
    if text is None:
        return {}, None
    document = _parse(text, str(path), problems, echo=not seen)
    if document is None:
        return {}, None
    own = document.unwrap()
    base: dict[str, Any] = {}
    parent_name = own.get("extends", "")
    if parent_name and isinstance(parent_name, str):  # not a string: reported with the other keys
        parent, refusal = _extends_target(parent_name, path.parent)
        line, col = find_line(text, "extends")
        if parent is None:
            problem = refusal or _not_found(parent_name)
            problem.file, problem.line, problem.col, problem.key = str(path), line, col, "extends"
            problems.append(problem)
        elif parent in seen or parent == path:
            chain = " -> ".join(p.name for p in (*seen, path, parent))
            problems.append(Problem("error", f"extends loops back on itself: {chain}", "extends", str(path), line, col))
        else:
            base, parent_doc = _load_chain(parent, origins, problems, (*seen, path))
            if parent_doc is None:
                problems.append(Problem("error", f"the preset it extends, {printable(parent, 200)}, cannot be used "
                                        "(see its problem)", "extends", str(path), line, col))
                return {}, None
            base.pop("description", None)  # a child describes itself
    for key in _keys_of(own):
        origins.files[key] = (str(path), text)
    return _merge(base, own), document  # the child's own `extends` replaces any inherited one


def _extends_target(name: str, relative_to: Path) -> tuple[Path | None, Problem | None]:
    """The preset `extends = name` points at: a .toml file only. Anything else is refused by its path,
    before it is read, so nothing of a file that is not a preset is ever shown."""
    parent = resolve(name, relative_to=relative_to)
    if parent is not None and parent.suffix.lower() == SUFFIX:
        return parent, None
    if parent is not None:
        return None, Problem("error", f"{printable(parent)} is not a TOML preset; extends takes only {SUFFIX} files",
                             hint="name a preset, or a .toml file relative to this one")
    return None, _not_a_file(name, relative_to)


def _not_a_file(name: str, relative_to: Path | None = None) -> Problem | None:
    """Why `name`, which exists, is not a preset file (a directory, a device, a FIFO); None if it does not exist."""
    candidates = [Path(name).expanduser()] if relative_to is None else [relative_to / name, Path(name).expanduser()]
    for candidate in candidates:
        try:
            if candidate.is_dir():
                return Problem("error", f"{printable(candidate)} is a directory, not a preset file",
                               hint="name a .toml file inside it")
            if candidate.exists():
                return Problem("error", f"{printable(candidate)} is not a regular file",
                               hint="give a preset name or a .toml file")
        except (OSError, ValueError):
            continue
    return None


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
    """One `--set section.key=value`; a mistake in it is blamed on the argument, never on the preset file."""
    key, sep, value = item.partition("=")
    key = key.strip()
    where = f"{OVERRIDE_ORIGIN} {item}"
    parts = key.split(".")
    if sep and key == "extends":  # resolved when the file is read, before any --set applies
        problems.append(Problem("error", "extends cannot be set from the command line", key=key, file=where,
                                hint="write extends in the preset, or pass the other preset's name instead"))
        return
    if sep and len(parts) == 1 and key in META_KEYS:
        raw[key] = parse_value(value.strip())
        origins.files[key] = (where, "")
        return
    usage = "write section.key=value, e.g. training.learning_rate=1e-4"
    if not sep or not key:
        why = "it has no '='" if not sep else "it has no key before '='"
        problems.append(Problem("error", f"cannot read this override: {why}", file=where, hint=usage))
        return
    if len(parts) != 2 or not all(p.strip() for p in parts):
        if parts[0] in META_KEYS:
            message, hint = f"'{parts[0]}' is a top-level key with no sub-keys", f"write --set {parts[0]}=VALUE"
        else:
            owner = next((spec.key for spec in FIELDS if spec.name == parts[-1]), None)
            message = f"'{key}' is not section.key: every setting is exactly one section and one key"
            hint = f"write --set {owner}=VALUE" if owner else hint_for(parts[0], parts[-1]) or usage
        problems.append(Problem("error", message, key=key, file=where, hint=hint))
        return
    section, name = (p.strip() for p in parts)
    if section in META_KEYS:
        problems.append(Problem("error", f"'{section}' is a top-level key with no sub-keys", key=key, file=where,
                                hint=f"write --set {section}=VALUE"))
        return
    if section not in SECTIONS:
        owner = next((spec.key for spec in FIELDS if spec.name == section), None)
        guess = did_you_mean(section, SECTIONS)
        hint = (f"'{section}' is a key of [{owner.split('.')[0]}]: write --set {owner}=VALUE" if owner
                else f"did you mean '{guess}.{name}'?" if guess else f"sections: {', '.join(SECTIONS)}")
        problems.append(Problem("error", f"unknown section '{section}'", key=key, file=where, hint=hint))
        return
    if not isinstance(raw.get(section, {}), dict):
        return  # the file's own [section] is not a table: that is reported against the file
    raw.setdefault(section, {})[name] = parse_value(value.strip())
    origins.files[f"{section}.{name}"] = (where, "")


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
            if key in owner:
                hint = f"'{key}' belongs in the [{owner[key]}] section"
            else:
                hint = hint_for(name, key) or f"`tunedeck explain {name}` lists the keys of [{name}]"
            problems.append(_at(origins, f"{name}.{key}", "unknown key", hint))
    return problems


def _at(origins: _Origins, key: str, message: str, hint: str = "") -> Problem:
    file, line, col = origins.locate(key)
    return Problem("error", message, key=key, file=file, line=line, col=col, hint=hint)


def _show(value: Any) -> str:
    """A value from the file as it is echoed in a message: in TOML-like notation, escaped and short."""
    try:
        text = json.dumps(value, ensure_ascii=False) if isinstance(value, (str, bool, list, dict)) or value is None \
            else repr(value)
    except (TypeError, ValueError):  # a date inside a list and the like
        text = repr(value)
    if isinstance(value, (dt.date, dt.time)):  # as TOML writes it, not as Python's repr
        text = value.isoformat()
    return printable(text, 60)


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
        if spec.kind == "tables" and len(loc) >= 4:  # one key of one [[section.key]] table
            problems[key] = _table_problem(spec, err, loc, origins)
            continue
        hint = f"allowed: {spec.allowed()}"
        if spec.choices and isinstance(value, str):
            guess = did_you_mean(value, [str(c) for c in spec.choices])
            if guess:
                hint = f"did you mean '{guess}'? {hint}"
        file, line, col = origins.locate(key)
        problems[key] = Problem("error", f"{_show(value)} is not allowed", key=key, file=file, line=line, col=col, hint=hint)
    return list(problems.values())


def _table_problem(spec: FieldSpec, err: dict[str, Any], loc: list[str], origins: _Origins) -> Problem:
    """`[[data.datasets]] 2: 'pth': unknown key (did you mean 'path'?)` and the like."""
    from runner.schema import SECTIONS as _SECTIONS

    item_model = _SECTIONS[spec.section].model_fields[spec.name].annotation.__args__[0]  # list[Model]
    name = loc[3]
    if err["type"] == "extra_forbidden":
        guess = did_you_mean(name, item_model.model_fields)
        message, hint = "unknown key", (f"did you mean '{guess}'? " if guess else "") + \
            f"keys: {', '.join(item_model.model_fields)}"
    else:
        message, hint = f"{_show(err.get('input'))} is not allowed", err["msg"]
    file, line, col = origins.locate(spec.key)
    return Problem("error", f"[[{spec.key}]] {int(loc[2]) + 1}: '{name}': {message}", key=spec.key, file=file,
                   line=line, col=col, hint=hint)


_BARE_OR_QUOTED = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_BARE_OR_QUOTED}(?:\s*\.\s*{_BARE_OR_QUOTED})*"
_HEADER = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]\]?\s*(?:#.*)?$")
_ASSIGNMENT = re.compile(rf"^(\s*)({_DOTTED})\s*=")
_INLINE_KEY = re.compile(rf"[{{,]\s*({_DOTTED})\s*=")


def _key_path(text: str) -> tuple[str, ...] | None:
    """The key path TOML reads from a key as written (`a."b.c"` -> ('a', 'b.c'), escapes decoded)."""
    try:
        node: Any = tomllib.loads(f"{text} = 0")
    except (tomllib.TOMLDecodeError, RecursionError, ValueError):
        return None
    path: list[str] = []
    while isinstance(node, dict) and len(node) == 1:
        (name, node), = node.items()
        path.append(name)
    return tuple(path)


@functools.lru_cache(maxsize=16)
def key_positions(text: str) -> dict[tuple[str, ...], tuple[int, int]]:
    """Where each key, table header, array-of-tables header and inline-table key is written (1-based line, col).

    Keys are read the way TOML reads them (quoted, escaped, dotted), so a key holding escapes or dots is
    found too. The first place a key is written wins.
    """
    found: dict[tuple[str, ...], tuple[int, int]] = {}
    table: tuple[str, ...] = ()
    in_string = ""
    for number, line in enumerate(text.splitlines(), start=1):
        if in_string:  # inside a multi-line string: nothing here is a key
            if line.count(in_string) % 2:
                in_string = ""
            continue
        header = _HEADER.match(line)
        if header:
            table = _key_path(header.group(1)) or ()
            found.setdefault(table, (number, line.index("[") + 1))
            continue
        match = _ASSIGNMENT.match(line)
        if not match:
            continue
        path = _key_path(match.group(2))
        if path is None:
            continue
        full = table + path
        found.setdefault(full, (number, len(match.group(1)) + 1))
        rest = line[match.end():]
        if rest.lstrip().startswith("{"):  # an inline table: its keys are on this line
            offset = match.end()
            for inner in _INLINE_KEY.finditer(rest):
                sub = _key_path(inner.group(1))
                if sub:
                    found.setdefault(full + sub, (number, offset + inner.start(1) + 1))
        for quote in ('"""', "'''"):
            if rest.count(quote) % 2:
                in_string = quote
    return found


def find_line(text: str, key: str) -> tuple[int | None, int | None]:
    """Line and column (1-based) where `section.key`, a `[section]` header or a top-level key is written."""
    positions = key_positions(text)
    section, _, name = key.partition(".")
    for path in ((section, name) if name else (section,), (key,), tuple(key.split("."))):
        if path in positions:
            return positions[path]
    return None, None


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
    typed: Mapping[str, str] | None = None,
) -> str:
    """TOML text for `config`.

    With `document` (the file as loaded), values are updated in place so comments and
    ordering survive; keys the file lacks are added only where the config differs
    from what the file builds on. A changed value is written as the user typed it
    (`typed`: section.key -> text) or in the style the file used, and comments that
    explained the old value are marked stale (runner/toml_edits.py). Without `document`
    a fresh file is written: every field (or, with `extends`, every changed field),
    each with its help as a comment.
    """
    typed = typed or {}
    baseline = baseline_for(config, relative_to)
    if document is None:
        return _fresh_document(config, baseline, with_help, typed).as_string()
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
                    toml_edits.replace_value(table, spec.name, value, typed.get(spec.key),
                                             help_text.toml_comment_lines(spec))
                continue
            if get_value(config, spec.key) == get_value(baseline, spec.key):
                continue
            if table is None:
                table = tomlkit.table()
                doc.add(section, table)
            if with_help:
                for line in help_text.toml_comment_lines(spec):
                    table.add(tomlkit.comment(line))
            table.add(spec.name, toml_edits.item_for(value, typed.get(spec.key)))
    return doc.as_string()


def save(
    config: Config,
    path: str | Path,
    *,
    document: tomlkit.TOMLDocument | None = None,
    with_help: bool = True,
    typed: Mapping[str, str] | None = None,
) -> Path:
    """Atomically write `config` to `path` (keeping `document`'s comments, and the notation of `typed`
    values, when given; see `dumps`)."""
    target = Path(path)
    text = dumps(config, document, with_help=with_help, relative_to=target.parent, typed=typed)
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
    if isinstance(value, list) and value and not isinstance(value[0], str):  # [[section.key]] tables
        aot = tomlkit.aot()
        for item in value:
            table = tomlkit.table()
            items = item if isinstance(item, dict) else item.model_dump(exclude_defaults=True)
            for k, v in items.items():
                table.add(k, _toml_value(v))
            aot.append(table)
        return aot
    if isinstance(value, list):
        array = tomlkit.array()
        array.extend(value)
        return array
    return value


def _fresh_document(config: Config, baseline: Config, with_help: bool,
                    typed: Mapping[str, str]) -> tomlkit.TOMLDocument:
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
        # [[section.key]] tables are written after the plain keys (TOML needs that); their help with them.
        for spec in sorted((s for s in FIELDS if s.section == section), key=lambda s: s.kind == "tables"):
            value = get_value(config, spec.key)
            if only_changes and value == get_value(baseline, spec.key):
                continue
            if spec.applies == "model.from_scratch" and not applies(spec, config) and value == spec.default:
                continue  # architecture fields of a pretrained model would read as if they were its shape
            if with_help:
                if len(table):
                    table.add(tomlkit.nl())
                for line in help_text.toml_comment_lines(spec):
                    table.add(tomlkit.comment(line))
            table.add(spec.name, toml_edits.item_for(_toml_value(value), typed.get(spec.key)))
        if len(table):
            doc.add(tomlkit.nl())
            doc.add(section, table)
    return doc


def require_config(source: str | Path, overrides: Sequence[str] = (), context: Context | None = None) -> Config:
    """The validated Config of a preset, or ConfigError."""
    loaded = require(source, overrides, context)
    assert loaded.config is not None
    return loaded.config
