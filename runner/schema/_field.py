"""The declaration helper every schema field goes through.

A field carries, beside its type and default, the explanation a user sees in the
form, in the TOML comments, in `tunedeck show` and in the JSON Schema. Only
JSON-safe metadata goes into `json_schema_extra` so the exported schema works.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# The upper bound of a whole-number field that states none: every integer the schema accepts has one,
# so a preset can never hand the trainer a value its 64-bit counters overflow on (2**63).
DEFAULT_INT_LIMIT = 2**31 - 1


def setting(
    default: Any,
    *,
    what: str,
    up: str,
    down: str,
    typical: str,
    advice: str = "",
    label: str | None = None,
    group: str | None = None,
    applies: str | None = None,
    unit: str | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    default_factory: Any = None,
) -> Any:
    """Declare one field.

    what/up/down/typical: what the field does, what raising it (or turning it on)
    does, what lowering it (or turning it off) does, and the usual values.
    advice: a recommendation that depends on context (model size, data size, GPU).
    group: the editor group when it differs from the section's own.
    applies: when the field matters, from other fields' values: a dotted path that must be truthy
    (``"lora.enabled"``, ``"data.datasets"``), negated with ``!`` (``"!model.from_scratch"``), compared
    with ``=value`` (``"launch.strategy=deepspeed"``) or a number (``"launch.num_machines>1"``,
    ``"!training.max_steps>0"``), alternatives joined by ``|`` (``"data.format=chat|data.datasets"``).
    The editor hides a field that does not apply and `tunedeck show` leaves it out, each with a note;
    a validation rule about the field should only fire when it applies, so the field can be fixed.
    """
    if isinstance(default, int) and not isinstance(default, bool) and le is None and lt is None:
        le = DEFAULT_INT_LIMIT
    extra: dict[str, Any] = {
        "help": {"what": what, "up": up, "down": down, "typical": typical, "advice": advice}
    }
    for key, value in (("label", label), ("group", group), ("applies", applies), ("unit", unit)):
        if value is not None:
            extra[key] = value
    kwargs: dict[str, Any] = dict(ge=ge, gt=gt, le=le, lt=lt, description=what, json_schema_extra=extra)
    if default_factory is not None:
        return Field(default_factory=default_factory, **kwargs)
    return Field(default, **kwargs)


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=False)
