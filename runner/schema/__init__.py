"""The config schema: the single definition of every field tunedeck knows.

`Config` is the whole file; `FIELDS` lists every field with its section, type,
default, limits, choices and help, in declaration order. The editor, validation,
TOML comments, the JSON Schema and the runner all read from here.
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field

from ..groups import GROUPS  # the editor's groups, in screen order (no pydantic: painted first)
from ._field import Section
from .data import DataSection
from .generation import GenerationSection
from .launch import LaunchSection
from .lora import LoraSection
from .model import ModelSection
from .quantization import QuantizationSection
from .training import TrainingSection

# Top-level keys that are not sections: they describe the preset itself.
META_KEYS = ("description", "extends")


class Config(BaseModel):
    """A complete tunedeck config (one preset file, after `extends` is resolved)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    description: str = Field("", description="One line saying what this preset is for.")
    extends: str = Field("", description="Name or path of a preset this one starts from.")
    model: ModelSection = Field(default_factory=ModelSection)
    quantization: QuantizationSection = Field(default_factory=QuantizationSection)
    lora: LoraSection = Field(default_factory=LoraSection)
    data: DataSection = Field(default_factory=DataSection)
    training: TrainingSection = Field(default_factory=TrainingSection)
    generation: GenerationSection = Field(default_factory=GenerationSection)
    launch: LaunchSection = Field(default_factory=LaunchSection)


SECTION_TITLES = {
    "model": "Model",
    "quantization": "Quantization",
    "lora": "LoRA",
    "data": "Data",
    "training": "Training",
    "generation": "Generation",
    "launch": "Launch",
}
SECTIONS: dict[str, type[Section]] = {
    name: info.annotation  # type: ignore[misc]
    for name, info in Config.model_fields.items()
    if name not in META_KEYS
}



@dataclass(frozen=True)
class FieldHelp:
    what: str
    up: str
    down: str
    typical: str
    advice: str = ""


@dataclass(frozen=True)
class FieldSpec:
    """Everything known about one field, flattened for consumers that are not pydantic."""

    section: str
    name: str
    kind: str  # "bool", "int", "float", "number" (int or float), "str", "choice", "list", "list_or_choice", "tables"
    default: Any
    choices: tuple[Any, ...]
    ge: float | None
    gt: float | None
    le: float | None
    lt: float | None
    help: FieldHelp
    label: str
    group: str
    applies: str | None
    unit: str | None

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"

    def allowed(self) -> str:
        """A short human description of the allowed values."""
        if self.kind == "bool":
            return "true or false"
        if self.kind in ("choice", "list_or_choice"):
            options = ", ".join(repr(c) for c in self.choices)
            return f"one of {options}" + (" or a list of strings" if self.kind == "list_or_choice" else "")
        if self.kind == "list":
            return "a list of strings"
        if self.kind == "tables":
            return f"a list of [[{self.key}]] tables"
        if self.kind == "str":
            return "a string"
        noun = {"int": "a whole number", "float": "a number", "number": "a number"}[self.kind]
        bounds = []
        if self.ge is not None:
            bounds.append(f">= {_fmt(self.ge)}")
        if self.gt is not None:
            bounds.append(f"> {_fmt(self.gt)}")
        if self.le is not None:
            bounds.append(f"<= {_fmt(self.le)}")
        if self.lt is not None:
            bounds.append(f"< {_fmt(self.lt)}")
        return noun + (" " + " and ".join(bounds) if bounds else "")


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _kind_and_choices(annotation: Any) -> tuple[str, tuple[Any, ...]]:
    origin = get_origin(annotation)
    if annotation is bool:
        return "bool", ()
    if annotation is int:
        return "int", ()
    if annotation is float:
        return "float", ()
    if annotation is str:
        return "str", ()
    if origin is Literal:
        return "choice", get_args(annotation)
    if origin is list:
        (item,) = get_args(annotation) or (str,)
        if isinstance(item, type) and issubclass(item, BaseModel):
            return "tables", ()  # [[section.key]] tables (data.datasets); fields from the item model
        return "list", ()
    if origin in (Union, types.UnionType):
        args = get_args(annotation)
        literal = next((a for a in args if get_origin(a) is Literal), None)
        if literal is not None and any(get_origin(a) is list for a in args):
            return "list_or_choice", get_args(literal)
        return "number", ()  # warmup_steps: StrictInt | float
    raise TypeError(f"unsupported annotation {annotation!r}")


def _limits(info: Any) -> dict[str, float | None]:
    out: dict[str, float | None] = {"ge": None, "gt": None, "le": None, "lt": None}
    for meta in info.metadata:
        for key in out:
            value = getattr(meta, key, None)
            if value is not None:
                out[key] = value
    return out


def _build_fields() -> tuple[FieldSpec, ...]:
    specs = []
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for name, info in cls.model_fields.items():
            extra = info.json_schema_extra or {}
            kind, choices = _kind_and_choices(hints[name])
            default = info.get_default(call_default_factory=True)
            specs.append(
                FieldSpec(
                    section=section,
                    name=name,
                    kind=kind,
                    default=default,
                    choices=choices,
                    help=FieldHelp(**extra["help"]),  # type: ignore[arg-type]
                    label=extra.get("label", name),  # type: ignore[arg-type]
                    group=extra.get("group", SECTION_TITLES[section]),  # type: ignore[arg-type]
                    applies=extra.get("applies"),  # type: ignore[arg-type]
                    unit=extra.get("unit"),  # type: ignore[arg-type]
                    **_limits(info),
                )
            )
    return tuple(specs)


FIELDS: tuple[FieldSpec, ...] = _build_fields()
FIELDS_BY_KEY: dict[str, FieldSpec] = {f.key: f for f in FIELDS}


def field(key: str) -> FieldSpec:
    return FIELDS_BY_KEY[key]


def get_value(config: Config, key: str) -> Any:
    section, name = key.split(".", 1)
    return getattr(getattr(config, section), name)


@dataclass(frozen=True)
class Term:
    """One alternative of an `applies` condition: `[!]section.key`, `[!]section.key=value`, `[!]section.key>N`
    (or `<N`). A bare path holds when its value is truthy (a switch on, a list or text not empty)."""

    negate: bool
    path: str
    op: str  # "", "=", "<" or ">"
    value: str


_TERM = re.compile(r"(!?)([\w.]+)(?:(=|<|>)(.*))?")


def condition_terms(condition: str) -> list[Term]:
    """The alternatives of a field's `applies` condition (`a|b`: the field applies when any holds)."""
    terms = []
    for text in condition.split("|"):
        match = _TERM.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"cannot read the applies condition {condition!r}")
        negate, path, op, value = match.groups()
        terms.append(Term(bool(negate), path, op or "", value or ""))
    return terms


def _holds(term: Term, config: Config) -> bool:
    actual = get_value(config, term.path)
    if term.op == "=":
        result = str(actual) == term.value
    elif term.op in ("<", ">"):
        result = actual < float(term.value) if term.op == "<" else actual > float(term.value)
    else:
        result = bool(actual)
    return result != term.negate


def applies(spec: FieldSpec, config: Config) -> bool:
    """Whether a field matters for this config (its `applies` condition holds)."""
    if not spec.applies:
        return True
    return any(_holds(term, config) for term in condition_terms(spec.applies))


def json_schema() -> dict[str, Any]:
    """JSON Schema of the preset format, with each field's help as its description (plain and markdown)."""
    from . import help_text

    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "tunedeck preset"
    for section, cls in SECTIONS.items():
        props = schema["$defs"][cls.__name__]["properties"]
        for name, prop in props.items():
            spec = FIELDS_BY_KEY[f"{section}.{name}"]
            prop.pop("help", None)
            prop["description"] = help_text.description(spec)
            prop["markdownDescription"] = help_text.markdown(spec)
    return schema


__all__ = [
    "Config", "FIELDS", "FIELDS_BY_KEY", "FieldSpec", "FieldHelp", "GROUPS", "SECTIONS", "SECTION_TITLES",
    "META_KEYS", "Term", "applies", "condition_terms", "field", "get_value", "json_schema",
]
