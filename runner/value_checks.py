"""Checks on what string values hold: no control characters anywhere, and paths that can be paths.

A model name, a data file or an output directory is handed to the file system sooner or later; one
with a 300-byte component or a NUL in it fails there with an OSError far from the preset. These
checks refuse such values at validation, with the key, so `validate` and the editor say it first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

from pydantic import BaseModel

from runner.printable import escape_controls, first_control, printable
from runner.problems import Problem

# Values handed to the file system (or to the Hugging Face cache, which makes a directory of a hub id).
PATH_KEYS = ("model.name_or_path", "model.tokenizer_name_or_path", "data.path", "data.eval_path",
             "training.output_dir", "launch.deepspeed_config")
OUTPUT_DIR_KEY = "training.output_dir"
PATH_MAX_BYTES = 4095  # Linux PATH_MAX (4096) less the terminating NUL
NAME_MAX_BYTES = 255  # one component, on every common file system
# System trees no run may write into: kernel interfaces and the system's own configuration.
FORBIDDEN_OUTPUT_ROOTS = ("/proc", "/sys", "/dev", "/etc")


def _strings(config: Any) -> Iterator[tuple[str, str]]:
    """(key, text) for every string in a config, list items included."""
    for key in ("description", "extends"):
        yield key, getattr(config, key, "") or ""
    for section, block in config:
        if not isinstance(block, BaseModel):
            continue
        for name, value in block:
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, str):
                    yield f"{section}.{name}", item


def control_character_problems(config: Any) -> Iterator[Problem]:
    """One error per key whose value holds a control character (a newline in a prompt is fine)."""
    seen: set[str] = set()
    for key, text in _strings(config):
        bad = first_control(text, "\n\t" if key == "generation.prompts" else "")
        if bad and key not in seen:
            seen.add(key)
            yield Problem("error", f"the value holds a control character ({escape_controls(bad)}): "
                          f"{printable(text, 60)}", key=key, hint="remove it; control characters are never needed here")


def path_problem(text: str) -> str | None:
    """Why `text` cannot be a path on this system, or None. Only its shape is checked, not the disk."""
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) > PATH_MAX_BYTES:
        return f"is {len(raw):,} bytes long; a path can be at most {PATH_MAX_BYTES:,} bytes"
    for part in text.split("/"):
        size = len(part.encode("utf-8", "surrogatepass"))
        if size > NAME_MAX_BYTES:
            return (f"has a part {size:,} bytes long ({printable(part, 40)}); each part of a path (between "
                    f"slashes) can be at most {NAME_MAX_BYTES} bytes")
    if "\x00" in text:
        return "holds a NUL character, which no path can contain"
    return None


def path_problems(config: Any) -> Iterator[Problem]:
    for key in PATH_KEYS:
        section, name = key.split(".")
        value = getattr(getattr(config, section, None), name, None)
        if not isinstance(value, str) or not value.strip():
            continue
        if first_control(value):
            continue  # already reported as a control character
        why = path_problem(value)
        if why:
            yield Problem("error", f"{printable(value, 60)} {why}", key=key,
                          hint="use a shorter name or path" if "long" in why else "")
        elif key == OUTPUT_DIR_KEY:
            yield from _output_dir_problems(value)


def _output_dir_problems(value: str) -> Iterator[Problem]:
    """The output directory must be creatable: not a file, not under a system tree."""
    try:
        path = Path(os.path.expanduser(value))
        absolute = path if path.is_absolute() else Path.cwd() / path
        resolved = absolute.resolve()  # follows symlinks, so /tmp/x -> /etc is caught too
    except (OSError, RuntimeError, ValueError):
        return
    for root in FORBIDDEN_OUTPUT_ROOTS:
        for candidate in (Path(os.path.normpath(absolute)), resolved):
            if candidate == Path(root) or Path(root) in candidate.parents:
                yield Problem("error", f"{printable(value, 80)} is under {root}, a system directory; runs "
                              "cannot be written there", key=OUTPUT_DIR_KEY,
                              hint="use a directory of your own, e.g. runs or ~/runs")
                return
    try:
        probe = resolved
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            what = ("is a file, not a directory" if probe == resolved
                    else f"cannot be a directory: {printable(probe, 80)} is a file")
            yield Problem("error", f"{printable(value, 80)} {what}", key=OUTPUT_DIR_KEY,
                          hint="runs are directories under output_dir: point it at a directory")
    except OSError:
        return


def problems(config: Any) -> Iterator[Problem]:
    yield from control_character_problems(config)
    yield from path_problems(config)
