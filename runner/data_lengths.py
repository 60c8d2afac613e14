"""The tokenized lengths the data preview measured, remembered per data set-up for the memory estimate.

`tunedeck data` (and the TUI's Data screen, which runs it) records the longest and the p99 row
length of the training data; the estimator can then size activations for the data's real longest
row instead of max_seq_length (runner.estimate.estimate(..., data_lengths=lookup(config))). The key
is a digest of everything that changes the token counts: the [data] section and the tokenizer.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from runner.atomic import atomic_write_text
from runner.paths import state_dir


def digest(config) -> str:
    m = config.model
    payload = {"data": config.data.model_dump(mode="json"), "tokenizer": m.tokenizer_name_or_path or m.name_or_path}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def _file(config) -> Path:
    return state_dir() / "data-lengths" / f"{digest(config)}.json"


def record(config, lengths: dict[str, Any]) -> None:
    """Remember the preview's lengths (max, p99, ...) for this data set-up; never raises."""
    try:
        path = _file(config)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({k: lengths[k] for k in ("max", "p99", "p95", "count") if k in lengths}))
    except OSError:
        pass


def lookup(config) -> dict[str, Any] | None:
    """The lengths recorded for exactly this data set-up, or None when the preview has not run on it."""
    try:
        return json.loads(_file(config).read_text())
    except (OSError, ValueError):
        return None
