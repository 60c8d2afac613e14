"""The one renderer of a field's help: every place that explains a field gets its text from here.

A field's help (runner/schema/_field.py `setting`) is what it does, what raising it does, what lowering
it does, typical values and advice, plus the schema's default, allowed values and the condition under
which it matters. `parts` puts these in reading order with honest labels (a switch is turned on or off,
not raised or lowered); each output format below only lays those parts out:

- `terminal_lines`: plain text for the command line (`tunedeck explain`);
- `toml_comment_lines`: wrapped comment lines written above a key when a preset is saved;
- `markup`: Textual markup for the help panel (short) and the F1 page (full);
- `markdown`, `description`: the JSON Schema's `markdownDescription` and `description`.

Nothing else formats help text; tests/test_help_text.py checks that no other module spells the labels.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.printable import as_markup, code_markup, escape_controls

if TYPE_CHECKING:
    from . import FieldSpec

# What raising and lowering are called, by field kind: a switch is turned on or off.
RAISE, LOWER = "Raise", "Lower"
WHEN_ON, WHEN_OFF = "When on", "When off"
TYPICAL, ADVICE = "Typical", "Advice"
# Schema texts of switches may start with "On: " / "Off: "; the label already says so.
_SWITCH_PREFIX = re.compile(r"^(On|Off):\s*")
# Markup colour and marker of each labelled part, for the help panel and the F1 page.
_STYLE = {RAISE: ("$success", "▲ "), LOWER: ("$warning", "▼ "), WHEN_ON: ("$success", "● "),
          WHEN_OFF: ("$warning", "○ "), TYPICAL: ("$accent", ""), ADVICE: ("$accent", "")}
TOML_WIDTH = 96  # columns a saved preset's help comments are wrapped to (with the leading "# ")


@dataclass(frozen=True)
class Part:
    """One labelled piece of help; label "" is the field's own description."""

    label: str
    text: str


def change_labels(spec: FieldSpec) -> tuple[str, str]:
    """What the two directions of a field are called: Raise/Lower, or When on/When off for a switch."""
    return (WHEN_ON, WHEN_OFF) if spec.kind == "bool" else (RAISE, LOWER)


def parts(spec: FieldSpec) -> list[Part]:
    """The help in reading order; empty pieces left out."""
    h = spec.help
    up_label, down_label = change_labels(spec)
    out = [Part("", h.what.strip())]
    for label, text in ((up_label, h.up), (down_label, h.down)):
        text = text.strip()
        if spec.kind == "bool":
            text = _SWITCH_PREFIX.sub("", text)
        if text:
            out.append(Part(label, text))
    if h.typical.strip():
        out.append(Part(TYPICAL, h.typical.strip().rstrip(".") + "."))
    if h.advice.strip():
        out.append(Part(ADVICE, h.advice.strip()))
    return out


def literal(value: Any) -> str:
    """A value as a preset writes it (TOML notation): true, "text", 5e-05, ["q_proj", "v_proj"]."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    return str(value)


def condition_text(applies: str, labels: bool = False) -> str:
    """An `applies` condition in words, by key (`tunedeck show`, the F1 page) or by label (the editor's note):
    `!model.from_scratch` -> 'model.from_scratch is false' / 'Train from scratch is off',
    `launch.strategy=deepspeed` -> "launch.strategy is 'deepspeed'", `a|b` -> '... or ...'."""
    from . import FIELDS_BY_KEY, condition_terms

    words = []
    for term in condition_terms(applies):
        spec = FIELDS_BY_KEY.get(term.path)
        name = spec.label if labels and spec is not None else term.path
        is_ = "is not" if term.negate else "is"
        if term.op == "=":
            words.append(f"{name} {is_} {term.value if labels else repr(term.value)}")
        elif term.op:
            words.append(f"{name} {is_} {'below' if term.op == '<' else 'above'} {term.value}")
        elif spec is not None and spec.kind == "bool":
            on, off = ("on", "off") if labels else ("true", "false")
            words.append(f"{name} is {off if term.negate else on}")
        else:
            words.append(f"{name} is {'empty' if term.negate else 'set'}")
    return " or ".join(words)


def facts(spec: FieldSpec) -> list[str]:
    """The schema's facts about a field: its default and allowed values, and when it applies."""
    out = [f"Default: {literal(spec.default)}; allowed: {spec.allowed()}."]
    if spec.applies:
        out.append(f"Applies only when {condition_text(spec.applies)}.")
    return out


def _labelled(part: Part) -> str:
    return f"{part.label}: {part.text}" if part.label else part.text


# --- plain text ------------------------------------------------------------------------------------


def terminal_lines(spec: FieldSpec) -> list[str]:
    """`tunedeck explain`: a heading line, then each part and fact indented."""
    lines = [f"{spec.key}  ({spec.label}; default {literal(spec.default)}; {spec.allowed()})"]
    lines += [f"  {_labelled(part)}" for part in parts(spec)]
    if spec.applies:
        lines.append(f"  Applies only when {condition_text(spec.applies)}.")
    return [escape_controls(line) for line in lines]


def description(spec: FieldSpec) -> str:
    """The JSON Schema `description`: every part and fact as plain sentences."""
    return "\n".join([*(_labelled(part) for part in parts(spec)), *facts(spec)])


def toml_comment_lines(spec: FieldSpec, width: int = TOML_WIDTH) -> list[str]:
    """A field's help as TOML comment lines, without the leading '#', wrapped to `width` columns."""
    lines: list[str] = []
    for part in parts(spec):
        lines += textwrap.wrap(_labelled(part), width - 2, subsequent_indent="  ")
    return lines


# --- Textual markup and markdown -------------------------------------------------------------------


def markup(spec: FieldSpec, full: bool = False) -> str:
    """Textual markup of a field's help: the help panel's (full=False) or the F1 page's (full=True, which adds
    when the field applies). Advice is left to the caller's "In context" part, beside this config's facts.
    Every piece of text is escaped, so nothing in it is read as a tag."""
    lines = [f"[b]{as_markup(spec.label)}[/b] [dim]{as_markup(spec.key)}[/]"]
    for part in parts(spec):
        if not part.label:
            lines += [code_markup(part.text), ""]
            continue
        if part.label == ADVICE:
            continue  # advice depends on the config: the panel and F1 page show it under "In context"
        colour, marker = _STYLE[part.label]
        lines.append(f"[{colour}]{marker}{part.label}:[/] {code_markup(part.text)}")
    shown = facts(spec) if full else facts(spec)[:1]
    lines += [f"[dim]{code_markup(fact)}[/]" for fact in shown]
    return "\n".join(lines)


def markdown(spec: FieldSpec) -> str:
    """The JSON Schema's `markdownDescription` (editors with a TOML language server show it on hover)."""
    lines = [f"**{spec.label}** (`{spec.key}`)", ""]
    for part in parts(spec):
        lines += [part.text, ""] if not part.label else [f"- {part.label}: {part.text}"]
    lines += [f"- {fact}" for fact in facts(spec)]
    return "\n".join(lines)
