"""Import other tools' training configs as tunedeck presets.

Every source key either maps to a tunedeck field or is listed, with the reason, in a
report and as a comment in the produced preset; nothing is dropped silently.
Formats: Axolotl YAML, LLaMA-Factory YAML (both layouts), transformers TrainingArguments JSON /
trainer_state.json, torchtune recipe YAML, accelerate config YAML, and every file
`tunedeck export` writes (read back from its embedded preset block).

Importers apply the source tool's meaning and its defaults for keys a file leaves out; every
value so derived carries a note written beside it in the preset. What tunedeck cannot train as
meant (preference training, unknown datasets or models) is refused unless `lenient`, in which
case the preset says at its top what was changed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

import tomlkit
import tomlkit.items

from runner.atomic import atomic_write_text
from runner.problems import ConfigError, Problem

from . import axolotl, exported, hf_args, llama_factory, torchtune
from ._common import Imported, Unmapped, Unsupported, settle_deepspeed

# Each converter takes the parsed file and the folder it lies in (where files it names are looked up).
FORMATS: dict[str, Callable[[dict[str, Any], Path], Imported]] = {
    "axolotl": axolotl.convert,
    "llama-factory": llama_factory.convert,
    "llama-factory-v1": llama_factory.convert_v1,
    "hf-args": hf_args.convert_training_args,
    "trainer-state": hf_args.convert_trainer_state,
    "torchtune": torchtune.convert,
    "accelerate": exported.convert_accelerate_yaml,
}
# A key names a secret when one of its words is one of these (hf_token, wandb.api_key, aws_secret_access_key,
# password, apiKey, ...); "special_tokens" or "tokenizer" do not.
SECRET_WORDS = {"token", "key", "secret", "password", "passwd", "pwd", "apikey", "credential", "credentials", "auth"}
SECRET_VALUE = re.compile(r"^(?:hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|ghp_[A-Za-z0-9]{20,})$")  # tokens by their look
REDACTED = "<redacted>"


def names_secret(key: str) -> bool:
    words = re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(key)).lower())
    return any(word in SECRET_WORDS for word in words)


def redact(value: Any, key: str = "") -> Any:
    """`value` with every secret replaced, at any depth: keys naming one, and values that look like one."""
    if key and names_secret(key.rsplit(".", 1)[-1].split("[")[0]):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str) and SECRET_VALUE.match(value.strip()):
        return REDACTED
    return value


def detect_format(data: dict[str, Any]) -> str | None:
    """Which tool wrote this config, from keys only that tool uses."""
    if llama_factory.is_v1(data):
        return "llama-factory-v1"
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


def import_file(path: str | Path, fmt: str | None = None, *, lenient: bool = False) -> Imported:
    """Convert one file; ConfigError (exit 1) naming what is unsupported and why, unless `lenient`."""
    source = Path(path)
    text = _read_text(source)
    if fmt is None and exported.looks_exported(text):
        return exported.convert_exported(text, source)  # our own export: its embedded preset
    data = read_source(source)
    fmt = fmt or detect_format(data)
    if fmt not in FORMATS:
        raise ConfigError([Problem("error", "cannot tell which tool wrote this config", file=str(source),
                                   hint=f"pass --format, one of: {', '.join(FORMATS)}")])
    try:
        imported = FORMATS[fmt](data, source.parent)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:  # a value of a type the tool itself would refuse
        raise ConfigError([Problem("error", f"a setting has a value {fmt} would not accept either ({type(exc).__name__}: "
                                   f"{exc})", file=str(source), hint="check the numbers and lists in the file")]) from None
    settle_deepspeed(imported, source.parent)
    for item in imported.unmapped:
        item.value = redact(item.value, item.key)  # tokens and keys never land in presets, at any depth
    imported.notes = [_redact_text(note, data) for note in imported.notes]
    if imported.unsupported and not lenient:
        raise Refused([Problem("error", f"{u.key}: {u.why}", file=str(source),
                                   hint=f"--lenient imports it anyway: {u.instead}") for u in imported.unsupported])
    return imported


class Refused(ConfigError):
    """The file was read, and tunedeck cannot train it as its tool meant (exit 1, 'the check said no')."""


def _redact_text(text: str, data: Any) -> str:
    """A note never repeats a secret the source holds."""
    for secret in _secrets(data):
        text = text.replace(secret, REDACTED)
    return text


def _secrets(value: Any, key: str = "") -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _secrets(v, str(k))]
    if isinstance(value, list):
        return [s for v in value for s in _secrets(v, key)]
    if isinstance(value, str) and len(value) >= 6 and ((key and names_secret(key)) or SECRET_VALUE.match(value)):
        return [value]
    return []


def render(imported: Imported, source: Path) -> str:
    """The preset text: mapped values, then every unmapped source key as a comment."""
    doc = tomlkit.document()
    doc.add(tomlkit.comment(f"Imported by tunedeck from {source.name} ({imported.source_format})."))
    if imported.unsupported:
        doc.add(tomlkit.comment("CHANGED ON IMPORT (--lenient): this preset does not train as the original did:"))
        for item in imported.unsupported:
            doc.add(tomlkit.comment(f"  {item.key}: {item.why}; instead: {item.instead}"))
    for note in imported.notes:
        doc.add(tomlkit.comment(f"Note: {note}"))
    doc.add(tomlkit.nl())
    doc.add("description", f"Imported from {source.name}")
    for section, values in imported.raw.items():
        table = tomlkit.table()
        for key, value in values.items():
            item = tomlkit.item(value)
            why = imported.why.get(f"{section}.{key}")
            if why and not isinstance(item, tomlkit.items.AoT):
                item.comment(_one_line(why))  # why this value: a default of the source tool, a translation
            table.add(key, item)
        doc.add(tomlkit.nl())
        doc.add(section, table)
    if imported.unmapped:
        doc.add(tomlkit.nl())
        doc.add(tomlkit.comment(f"Not imported from {source.name} (kept here so nothing is lost):"))
        for item in imported.unmapped:
            doc.add(tomlkit.comment(f"  {item.key} = {_short(item.value)}  -- {item.reason}"))
    return doc.as_string()


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def write_preset(imported: Imported, source: Path, output: Path) -> None:
    atomic_write_text(output, render(imported, source))


__all__ = ["FORMATS", "Imported", "Refused", "Unmapped", "Unsupported", "redact", "detect_format", "import_file", "read_source", "render", "write_preset"]
