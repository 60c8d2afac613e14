"""Import other tools' training configs as tunedeck presets.

Every source key either maps to a tunedeck field or is listed, with the reason, in a
report and as a comment in the produced preset; nothing is dropped silently.
Formats: Axolotl YAML, LLaMA-Factory YAML, transformers TrainingArguments JSON /
trainer_state.json, torchtune recipe YAML, accelerate config YAML, and every file
`tunedeck export` writes (read back from its embedded preset block).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

import tomlkit

from runner.atomic import atomic_write_text
from runner.problems import ConfigError, Problem

from . import axolotl, exported, hf_args, llama_factory, torchtune
from ._common import Imported, Unmapped

FORMATS: dict[str, Callable[[dict[str, Any]], Imported]] = {
    "axolotl": axolotl.convert,
    "llama-factory": llama_factory.convert,
    "hf-args": hf_args.convert_training_args,
    "trainer-state": hf_args.convert_trainer_state,
    "torchtune": torchtune.convert,
    "accelerate": exported.convert_accelerate_yaml,
}
SECRET_KEY = re.compile(r"(?:^|_)token$|api_key|secret|password", re.IGNORECASE)


def detect_format(data: dict[str, Any]) -> str | None:
    """Which tool wrote this config, from keys only that tool uses."""
    if "log_history" in data or "best_model_checkpoint" in data:
        return "trainer-state"
    if any(isinstance(v, dict) and "_component_" in v for v in data.values()):
        return "torchtune"
    if {"distributed_type", "compute_environment"} & data.keys():
        return "accelerate"
    if {"base_model", "micro_batch_size", "sequence_len", "adapter", "datasets"} & data.keys():
        return "axolotl"
    if {"finetuning_type", "stage", "cutoff_len", "lora_target", "template"} & data.keys():
        return "llama-factory"
    if {"per_device_train_batch_size", "learning_rate", "lr_scheduler_type"} & data.keys():
        return "hf-args"
    return None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem("error", f"cannot read the file: {exc}", file=str(path))]) from None


def read_source(path: Path) -> dict[str, Any]:
    """The file as a dict; ConfigError (with line) when it is not valid YAML/JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem("error", f"cannot read the file: {exc}", file=str(path))]) from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError([Problem("error", f"malformed JSON: {exc.msg}", file=str(path), line=exc.lineno, col=exc.colno)]) from None
    else:
        import yaml  # only imports need it

        try:
            data = yaml.safe_load(text)  # safe_load: a config is data, never code
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise ConfigError([Problem("error", f"malformed YAML: {getattr(exc, 'problem', exc)}", file=str(path),
                                       line=mark.line + 1 if mark else None, col=mark.column + 1 if mark else None)]) from None
    if not isinstance(data, dict):
        raise ConfigError([Problem("error", "expected a mapping of settings at the top level", file=str(path))])
    return data


def import_file(path: str | Path, fmt: str | None = None) -> Imported:
    source = Path(path)
    text = _read_text(source)
    if fmt is None and exported.looks_exported(text):
        return exported.convert_exported(text, source)  # our own export: its embedded preset
    data = read_source(source)
    fmt = fmt or detect_format(data)
    if fmt not in FORMATS:
        raise ConfigError([Problem("error", "cannot tell which tool wrote this config", file=str(source),
                                   hint=f"pass --format, one of: {', '.join(FORMATS)}")])
    imported = FORMATS[fmt](data)
    for item in imported.unmapped:
        if SECRET_KEY.search(item.key):
            item.value = "<redacted>"  # tokens and keys never land in presets
    return imported


def render(imported: Imported, source: Path) -> str:
    """The preset text: mapped values, then every unmapped source key as a comment."""
    doc = tomlkit.document()
    doc.add(tomlkit.comment(f"Imported by tunedeck from {source.name} ({imported.source_format})."))
    for note in imported.notes:
        doc.add(tomlkit.comment(f"Note: {note}"))
    doc.add(tomlkit.nl())
    doc.add("description", f"Imported from {source.name}")
    for section, values in imported.raw.items():
        table = tomlkit.table()
        for key, value in values.items():
            table.add(key, value)
        doc.add(tomlkit.nl())
        doc.add(section, table)
    if imported.unmapped:
        doc.add(tomlkit.nl())
        doc.add(tomlkit.comment(f"Not imported from {source.name} (kept here so nothing is lost):"))
        for item in imported.unmapped:
            doc.add(tomlkit.comment(f"  {item.key} = {_short(item.value)}  -- {item.reason}"))
    return doc.as_string()


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def write_preset(imported: Imported, source: Path, output: Path) -> None:
    atomic_write_text(output, render(imported, source))


__all__ = ["FORMATS", "Imported", "Unmapped", "detect_format", "import_file", "read_source", "render", "write_preset"]
