"""Autosave drafts: the edited config written a moment after each change, restored after a crash.

One JSON file per opened source and per session (the tunedeck process that wrote it) under
`state_dir()/drafts/`; written atomically, deleted on save or on an explicit discard.

A draft belongs to its session: several tunedecks can be open at once (terminals, browser tabs
of `tunedeck-serve`), and one must never be offered another's edits while that one is still
open. Only drafts whose session has ended (closed, crashed, killed) are offered, plus this
session's own.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydantic import ValidationError

from runner.atomic import atomic_write_text
from runner.paths import state_dir
from runner.schema import Config

DRAFT_VERSION = 2  # 2 added the session; version 1 drafts count as drafts of an ended session


@dataclass(frozen=True)
class Session:
    """A tunedeck process: its pid and start time (the pair survives pid reuse)."""

    pid: int
    started: float  # seconds since the epoch, as psutil reports the process start

    @property
    def tag(self) -> str:
        return f"{self.pid}-{int(self.started * 1000)}"

    def has_ended(self) -> bool:
        import psutil

        try:
            return abs(psutil.Process(self.pid).create_time() - self.started) > 0.01
        except psutil.Error:  # gone (or not ours to look at: then it is not a live tunedeck of ours either)
            return True


@lru_cache(maxsize=1)
def _session_of(pid: int) -> Session:
    import psutil

    return Session(pid, psutil.Process(pid).create_time())


def this_session() -> Session:
    return _session_of(os.getpid())  # keyed by pid, so a forked child is a session of its own


@dataclass(frozen=True)
class Draft:
    source: str  # the preset name or path the edits started from
    name: str
    path: Path | None
    saved_at: float  # seconds since the epoch
    config: Config
    file: Path
    session: Session | None = None  # None: written before drafts had sessions

    def offerable(self) -> bool:
        """May this session offer it? Its own drafts, and those of sessions that have ended."""
        return self.session is None or self.session == this_session() or self.session.has_ended()


def drafts_dir() -> Path:
    return state_dir() / "drafts"


def _prefix(source: str) -> str:
    # A readable stem plus a hash so two files with the same name in different folders do not collide.
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(source).stem)[:40] or "draft"
    digest = hashlib.sha256(source.encode()).hexdigest()[:10]
    return f"{stem}-{digest}"


def draft_file(source: str, session: Session | None = None) -> Path:
    """Where `session` (default: this one) keeps its draft of `source`."""
    return drafts_dir() / f"{_prefix(source)}.{(session or this_session()).tag}.json"


def write_draft(source: str, name: str, path: Path | None, config: Config) -> Path:
    session = this_session()
    target = draft_file(source, session)
    payload = {
        "version": DRAFT_VERSION,
        "source": source,
        "name": name,
        "path": str(path) if path else None,
        "saved_at": time.time(),
        "session": {"pid": session.pid, "started": session.started},
        "config": config.model_dump(mode="json"),
    }
    atomic_write_text(target, json.dumps(payload, indent=1))
    return target


def read_draft(file: Path) -> Draft | None:
    """The draft in `file`, or None when it is missing, unreadable or no longer fits the schema."""
    try:
        payload = json.loads(file.read_text(encoding="utf-8"))
        config = Config.model_validate(payload["config"])
        owner = payload.get("session")
        return Draft(
            source=payload["source"],
            name=payload["name"],
            path=Path(payload["path"]) if payload.get("path") else None,
            saved_at=float(payload["saved_at"]),
            config=config,
            file=file,
            session=Session(int(owner["pid"]), float(owner["started"])) if owner else None,
        )
    except (OSError, ValueError, KeyError, TypeError, ValidationError):
        return None


def _drafts(pattern: str) -> list[Draft]:
    """The readable drafts whose file matches `pattern`, newest first."""
    try:
        files = list(drafts_dir().glob(pattern))
    except OSError:
        return []
    found = [draft for draft in map(read_draft, files) if draft is not None]
    return sorted(found, key=lambda d: d.saved_at, reverse=True)


def _drafts_of(source: str) -> list[Draft]:
    prefix = _prefix(source)  # `prefix.json` is the one-file-per-source layout of version 1
    return [d for d in _drafts(f"{prefix}.*json") if d.source == source and d.file.name.startswith(prefix + ".")]


def find_draft(source: str) -> Draft | None:
    """The newest draft of `source` this session may offer (see Draft.offerable)."""
    return next((d for d in _drafts_of(source) if d.offerable()), None)


def latest_draft() -> Draft | None:
    """The newest draft of any source that this session may offer."""
    return next((d for d in _drafts("*.json") if d.offerable()), None)


def delete_draft(source: str) -> None:
    """Forget the edits to `source` (saved or discarded): this session's draft and those of ended
    sessions. Another open session's draft is its own and stays."""
    for draft in _drafts_of(source):
        if draft.offerable():
            draft.file.unlink(missing_ok=True)


def adopt(draft: Draft) -> Path:
    """Make an ended session's draft this session's own (it was restored here), so the next
    session to open is not offered edits that are open again."""
    own = write_draft(draft.source, draft.name, draft.path, draft.config)
    if draft.file != own:
        draft.file.unlink(missing_ok=True)
    return own
