"""Shared machinery for importers: consume source keys, set tunedeck keys, report the rest.

Every value an importer sets that the source did not say in so many words (a default of the
source tool, a translation of its semantics) carries a one-line note; `render` writes it as a
TOML comment beside the value, so a user can see why the value is what it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class Unmapped:
    key: str  # dotted path in the source file
    value: Any
    reason: str


@dataclass
class Unsupported:
    """Something tunedeck cannot train as the source meant it: refused unless --lenient."""

    key: str  # dotted path in the source file
    why: str  # what tunedeck cannot do, in the user's terms
    instead: str  # what --lenient does instead (written at the top of the preset)


@dataclass
class Imported:
    """A converted config: raw tunedeck sections, plus every source key that did not map."""

    source_format: str
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)
    unmapped: list[Unmapped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # decisions worth telling the user
    why: dict[str, str] = field(default_factory=dict)  # "section.name" -> why it has this value
    unsupported: list[Unsupported] = field(default_factory=list)

    def value(self, target: str, default: Any = None) -> Any:
        section, name = target.split(".", 1)
        return self.raw.get(section, {}).get(name, default)

    def is_set(self, target: str) -> bool:
        section, name = target.split(".", 1)
        return name in self.raw.get(section, {})

    def refuse(self, key: str, why: str, instead: str) -> None:
        self.unsupported.append(Unsupported(key, why, instead))


class Mapper:
    """Walks a flat source dict: each key is either mapped (`take`) or reported (`skip`/left over)."""

    def __init__(self, source: dict[str, Any], result: Imported, prefix: str = ""):
        self.source = source
        self.result = result
        self.prefix = prefix
        self.seen: set[str] = set()

    def has(self, key: str) -> bool:
        return key in self.source and self.source[key] is not None

    def given(self, key: str) -> bool:
        """The key is written in the file, even as null (null can mean something: 'no limit')."""
        return key in self.source

    def get(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        value = self.source.get(key, default)
        return default if value is None else value

    def set(self, target: str, value: Any, why: str | None = None) -> None:
        section, name = target.split(".", 1)
        self.result.raw.setdefault(section, {})[name] = _numeric(target, value)
        if why:
            self.result.why[target] = why
        else:
            self.result.why.pop(target, None)  # a value stated by the source needs no explanation

    def default(self, target: str, value: Any, why: str) -> None:
        """The source left `target` out: use the source tool's own default, saying whose and where."""
        if not self.result.is_set(target):
            self.set(target, value, why)

    def take(self, key: str, target: str, convert: Callable[[Any], Any] = lambda v: v, why: str | None = None) -> None:
        """Map `key` to `target` (section.name) when present, converting its value."""
        if not self.has(key):
            self.seen.add(key)
            return
        if why is None and key != target.split(".", 1)[1]:
            why = f"from {self.prefix}{key}"  # a renamed key says where it came from
        self.set(target, convert(self.get(key)), why)

    def take_each(self, mappings: tuple[tuple, ...]) -> None:
        """`take` for every (key, target) or (key, target, convert) row of a mapping table."""
        for key, target, *convert in mappings:
            self.take(key, target, *convert)

    def skip(self, key: str, reason: str) -> None:
        if key in self.source:
            self.seen.add(key)
            if self.source[key] is not None:
                self.result.unmapped.append(Unmapped(self.prefix + key, self.source[key], reason))

    def leftovers(self, reason: str = "no tunedeck equivalent") -> None:
        for key, value in self.source.items():
            if key not in self.seen and value is not None:
                self.result.unmapped.append(Unmapped(self.prefix + key, value, reason))


def _numeric(target: str, value: Any) -> Any:
    """YAML reads 2e-4 (no dot) as a string; the tools parse it as a number, and so do we for numeric fields."""
    if not isinstance(value, str):
        return value
    from runner.schema import FIELDS_BY_KEY

    spec = FIELDS_BY_KEY.get(target)
    if spec is None or spec.kind not in ("int", "float", "number"):
        return value
    number = float(value)  # ValueError: reported by import_file as a value the tool would not accept either
    return int(number) if spec.kind == "int" or (spec.kind == "number" and number.is_integer() and number >= 1) else number


def as_list(value: Any) -> list[str]:
    """A module list written as a list or a comma-separated string."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(v) for v in value]


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "auto")
    return bool(value)


# transformers 5 TrainingArguments defaults (src/transformers/training_args.py, the dataclass fields),
# for tools that hand absent keys straight to TrainingArguments (LLaMA-Factory, a partial
# training_args.json). tests/test_import.py checks this table against the installed transformers.
TRANSFORMERS_DEFAULTS: dict[str, Any] = {
    "per_device_train_batch_size": 8, "per_device_eval_batch_size": 8, "gradient_accumulation_steps": 1,
    "num_train_epochs": 3.0, "max_steps": -1, "seed": 42, "learning_rate": 5e-5, "optim": "adamw_torch_fused",
    "weight_decay": 0.0, "adam_beta1": 0.9, "adam_beta2": 0.999, "adam_epsilon": 1e-8, "max_grad_norm": 1.0,
    "lr_scheduler_type": "linear", "warmup_steps": 0, "bf16": False, "fp16": False, "save_strategy": "steps",
    "save_steps": 500, "eval_strategy": "no", "logging_steps": 500, "load_best_model_at_end": False,
}


def transformers_defaults(m: Mapper, tool: str) -> None:
    """Absent [training] keys take the transformers default the source tool would have run with."""
    for name, value in TRANSFORMERS_DEFAULTS.items():
        m.default(f"training.{name}", value, f"absent: {tool} runs with the transformers default "
                                              "(transformers/training_args.py)")


def deepspeed_file(m: Mapper, key: str, path: Any, source_note: str) -> None:
    """A DeepSpeed JSON config named by the source: launch with that very file (stage read from it later)."""
    m.seen.add(key)
    if isinstance(path, dict):  # an inline DeepSpeed config (Axolotl/transformers accept a dict)
        m.set("launch.strategy", "deepspeed", f"{key} was an inline DeepSpeed config ({source_note})")
        stage = (path.get("zero_optimization") or {}).get("stage")
        if stage in (1, 2, 3):
            m.set("launch.zero_stage", int(stage), f"zero_optimization.stage of the inline {key}")
        m.result.unmapped.append(Unmapped(m.prefix + key, path, "inline DeepSpeed settings: save them to a JSON "
                                          "file and set launch.deepspeed_config to use them as they are"))
        return
    m.set("launch.strategy", "deepspeed", f"{key} names a DeepSpeed config ({source_note}); set "
          "launch.num_processes to your GPU count")
    m.set("launch.deepspeed_config", str(path), f"{key} of the source: DeepSpeed reads this file as it is")


def fsdp_on(m: Mapper, key: str, source_note: str) -> None:
    m.seen.add(key)
    m.set("launch.strategy", "fsdp", f"{key} turns on FSDP ({source_note}); tunedeck writes its own FSDP "
                                     "settings (full sharding, one unit per decoder block); set launch.num_processes "
                                     "to your GPU count")


def find_file(name: str, base: "Path | None") -> "Path | None":
    """A file a config names: as written (absolute, or from where tunedeck runs), else beside the config."""
    from pathlib import Path

    candidates = [Path(name).expanduser()]
    if base is not None and not Path(name).is_absolute():
        candidates.append(base / name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


def settle_deepspeed(result: Imported, base: "Path | None") -> None:
    """A DeepSpeed file named by the source: the path that exists, and the ZeRO stage written in it."""
    import json
    import re

    path = result.value("launch.deepspeed_config")
    if not path:
        return
    found = find_file(path, base)
    if found is not None:
        result.raw["launch"]["deepspeed_config"] = str(found.resolve())
        try:
            stage = (json.loads(found.read_text(encoding="utf-8")).get("zero_optimization") or {}).get("stage")
        except (OSError, ValueError, AttributeError):
            stage = None
        if stage in (1, 2, 3):
            result.raw["launch"]["zero_stage"] = int(stage)
            result.why["launch.zero_stage"] = f"zero_optimization.stage in {found.name}"
            return
    named = re.search(r"(?:zero|z|stage)[_-]?([123])(?!\d)", _basename(path), re.IGNORECASE)
    if named:
        result.raw["launch"]["zero_stage"] = int(named.group(1))
        result.why["launch.zero_stage"] = (f"from the file name {_basename(path)!r} "
                                          f"({'the file is not on this machine' if found is None else 'no stage in it'})")
    else:
        result.notes.append(f"launch.deepspeed_config {path!r} is not on this machine; launch.zero_stage keeps "
                            "tunedeck's default until you check it against the file")


def _basename(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


@dataclass
class Source:
    """One dataset of the source config, as [data] / [[data.datasets]] fields, each with its note."""

    values: dict[str, Any] = field(default_factory=dict)
    why: dict[str, str] = field(default_factory=dict)

    def put(self, key: str, value: Any, why: str | None = None) -> None:
        self.values[key] = value
        if why:
            self.why[key] = why


def apply_datasets(m: Mapper, sources: list[Source], origin: str) -> None:
    """One dataset: its settings go to [data] itself. Several: a [[data.datasets]] mixture in which each
    entry keeps its own path, format, columns and caps; [data]'s format is the first one's."""
    if not sources:
        return
    if len(sources) == 1:
        for key, value in sources[0].values.items():
            if key != "weight":
                m.set(f"data.{key}", value, sources[0].why.get(key))
        return
    m.set("data.format", sources[0].values.get("format", "text"), f"the first of the {origin} (each "
          "[[data.datasets]] entry says its own)")
    m.set("data.datasets", [dict(s.values) for s in sources])
    m.result.notes.append(f"{len(sources)} datasets of {origin} became a [[data.datasets]] mixture, trained together "
                          "(check it with `tunedeck data PRESET`)")
    for index, source in enumerate(sources):
        if source.why:
            m.result.notes.append(f"data.datasets[{index}]: " + "; ".join(f"{k}: {w}" for k, w in source.why.items()))
