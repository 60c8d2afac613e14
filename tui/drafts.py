"""Autosave drafts: the edited config written a moment after each change, restored after a crash.

One JSON file per opened source under `state_dir()/drafts/`; written atomically, deleted on
save or on an explicit discard.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from runner.atomic import atomic_write_text
from runner.paths import state_dir
from runner.schema import Config

DRAFT_VERSION = 1


@dataclass(frozen=True)
class Draft:
    source: str  # the preset name or path the edits started from
    name: str
    path: Path | None
    saved_at: float  # seconds since the epoch
    config: Config
    file: Path


def drafts_dir() -> Path:
    return state_dir() / "drafts"


def draft_file(source: str) -> Path:
    # A readable stem plus a hash so two files with the same name in different folders do not collide.
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(source).stem)[:40] or "draft"
    digest = hashlib.sha256(source.encode()).hexdigest()[:10]
    return drafts_dir() / f"{stem}-{digest}.json"


def write_draft(source: str, name: str, path: Path | None, config: Config) -> Path:
    target = draft_file(source)
    payload = {
        "version": DRAFT_VERSION,
        "source": source,
        "name": name,
        "path": str(path) if path else None,
        "saved_at": time.time(),
        "config": config.model_dump(mode="json"),
    }
    atomic_write_text(target, json.dumps(payload, indent=1))
    return target


def read_draft(file: Path) -> Draft | None:
    """The draft in `file`, or None when it is missing, unreadable or no longer fits the schema."""
    try:
        payload = json.loads(file.read_text(encoding="utf-8"))
        config = Config.model_validate(payload["config"])
        return Draft(
            source=payload["source"],
            name=payload["name"],
            path=Path(payload["path"]) if payload.get("path") else None,
            saved_at=float(payload["saved_at"]),
            config=config,
            file=file,
        )
    except (OSError, ValueError, KeyError, TypeError, ValidationError):
        return None


def find_draft(source: str) -> Draft | None:
    return read_draft(draft_file(source))


def latest_draft() -> Draft | None:
    """The most recently written draft of any source."""
    try:
        files = sorted(drafts_dir().glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return None
    for file in files:
        draft = read_draft(file)
        if draft is not None:
            return draft
    return None


def delete_draft(source: str) -> None:
    draft_file(source).unlink(missing_ok=True)
