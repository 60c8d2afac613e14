"""Every bound and choice the schema states, tested at the edge: the value just allowed and the one just
refused. The cases are generated from the schema, so a field or bound added later is tested too.

Allowed values go through pydantic directly (one field at a time, nothing else set); refused ones
through a real preset file, so the message must name the key and state what the schema allows.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from runner import presets
from runner.schema import FIELDS, Config, FieldSpec

NUMERIC = ("int", "float", "number")


def _step_below(spec: FieldSpec, x: float) -> Any:
    return int(x) - 1 if spec.kind == "int" else math.nextafter(float(x), -math.inf)


def _step_above(spec: FieldSpec, x: float) -> Any:
    return int(x) + 1 if spec.kind == "int" else math.nextafter(float(x), math.inf)


def _typed(spec: FieldSpec, x: float) -> Any:
    return int(x) if spec.kind == "int" or (spec.kind == "number" and float(x).is_integer()) else float(x)


def edges(spec: FieldSpec) -> list[tuple[str, Any, bool]]:
    """(what, value, allowed) at each edge the field states."""
    out: list[tuple[str, Any, bool]] = []
    if spec.kind in NUMERIC:
        if spec.ge is not None:
            out += [("ge", _typed(spec, spec.ge), True), ("below ge", _step_below(spec, spec.ge), False)]
        if spec.gt is not None:
            out += [("gt", _typed(spec, spec.gt), False), ("above gt", _step_above(spec, spec.gt), True)]
        if spec.le is not None:
            out += [("le", _typed(spec, spec.le), True), ("above le", _step_above(spec, spec.le), False)]
        if spec.lt is not None:
            out += [("lt", _typed(spec, spec.lt), False), ("below lt", _step_below(spec, spec.lt), True)]
        if spec.kind == "int":
            out.append(("a fraction", float(spec.default) + 0.5, False))
        out.append(("a string", "1", False))
    elif spec.kind in ("choice", "list_or_choice"):
        out += [(f"choice {c!r}", c, True) for c in spec.choices]
        out.append(("not a choice", "surely-not-a-choice", False))
    elif spec.kind == "bool":
        out += [("true", True, True), ("false", False, True), ("1", 1, False), ("'yes'", "yes", False)]
    elif spec.kind == "str":
        out += [("a string", "x", True), ("a number", 5, False)]
    elif spec.kind == "list":
        out += [("a number", 5, False)]
    out.append(("the default", spec.default, True))
    return out


CASES = [(spec, what, value, allowed) for spec in FIELDS for what, value, allowed in edges(spec)]


def test_every_whole_number_in_the_schema_has_an_upper_bound() -> None:
    """Each integer field (and int-or-float field) states an upper bound, so nothing like 2**63 reaches the
    trainer (runner/schema/_field.py gives one to an integer field that states none)."""
    for spec in FIELDS:
        if spec.kind in ("int", "number"):
            assert spec.le is not None or spec.lt is not None, spec.key
            assert (spec.le or spec.lt) <= 2**53, spec.key  # and a sane one, exact even as a float


def test_every_field_has_edge_cases() -> None:
    covered = {spec.key for spec, *_ in CASES}
    assert covered == {spec.key for spec in FIELDS}


@pytest.mark.parametrize("spec, what, value, allowed", CASES,
                         ids=[f"{spec.key}-{what}" for spec, what, _, allowed in CASES])
def test_the_value_at_each_edge(spec: FieldSpec, what: str, value: Any, allowed: bool, tmp_path: Path) -> None:
    data = {spec.section: {spec.name: value}}
    if allowed:
        config = Config.model_validate(data, strict=True)
        assert getattr(getattr(config, spec.section), spec.name) == value
        return
    with pytest.raises(ValidationError):
        Config.model_validate(data, strict=True)
    import tomlkit

    preset = tmp_path / "edge.toml"
    preset.write_text(tomlkit.dumps(data))
    loaded = presets.load(preset)
    problems = [p for p in loaded.errors if p.key == spec.key]
    assert problems and loaded.config is None, f"{spec.key} = {value!r} was not refused"
    assert spec.allowed() in problems[0].hint and problems[0].line is not None


@pytest.mark.parametrize("key, limit", [("training.max_steps", 2**63 - 1), ("training.seed", 2**63 - 1),
                                        ("training.save_total_limit", 10**12), ("launch.machine_rank", 10**6)])
def test_huge_integers_are_refused_with_the_allowed_range(key: str, limit: int, tmp_path: Path) -> None:
    section, name = key.split(".")
    preset = tmp_path / "huge.toml"
    preset.write_text(f"[{section}]\n{name} = {limit}\n")
    (problem,) = presets.load(preset).errors
    assert problem.key == key and problem.line == 2 and "<=" in problem.hint
