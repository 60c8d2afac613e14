"""Measured peaks from earlier runs with the same memory-relevant settings.

The runner writes `memory_signature` in each run's `run_started` event and the measured GPU memory
(`gpu_mem_*`, bytes) in `log` and final events; this finds the newest matching run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from runner.schema import Config

from .memory import MEMORY_KEYS, SCRATCH_KEYS, settings

MEASURED_KEYS = ("gpu_mem_peak_allocated", "gpu_mem_peak_reserved", "gpu_mem_nvml_used")


def memory_signature(config: Config) -> str:
    """A stable hash of every setting that changes memory; equal signatures should measure the same."""
    values = settings(config)
    keys = MEMORY_KEYS + (SCRATCH_KEYS if config.model.from_scratch else ())
    text = json.dumps({k: values[k] for k in keys}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def last_measured_peak(config: Config, runs_dir: str | Path) -> dict[str, Any] | None:
    """The newest run under `runs_dir` started with the same memory signature, with its measured peaks.

    Returns {"run_dir", "time", "peak_allocated", "peak_reserved", "nvml_used", "estimated_peak"}
    (the gpu values in bytes, None where the run did not record them), or None when no run matches.
    """
    signature = memory_signature(config)
    best: tuple[float, Path, list[dict[str, Any]]] | None = None
    root = Path(runs_dir)
    if not root.is_dir():
        return None
    for events in root.glob("*/events.jsonl"):
        started, rest = _scan(events, signature)
        if started is not None and (best is None or started[0] > best[0]):
            best = (started[0], events.parent, [started[1], *rest])
    if best is None:
        return None
    when, run_dir, found = best
    peaks = {key: max((e[key] for e in found if isinstance(e.get(key), (int, float))), default=None)
             for key in MEASURED_KEYS}
    estimated = found[0].get("estimated_memory") or found[0].get("estimate") or {}
    return {"run_dir": str(run_dir), "time": when, "peak_allocated": peaks["gpu_mem_peak_allocated"],
            "peak_reserved": peaks["gpu_mem_peak_reserved"], "nvml_used": peaks["gpu_mem_nvml_used"],
            "estimated_peak": estimated.get("peak_bytes") if isinstance(estimated, dict) else None}


def _scan(path: Path, signature: str) -> tuple[tuple[float, dict[str, Any]] | None, list[dict[str, Any]]]:
    """The last run_started with `signature` in one events file, and the memory events after it."""
    started: tuple[float, dict[str, Any]] | None = None
    after: list[dict[str, Any]] = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None, []
    for line in lines:
        if '"run_started"' not in line and "gpu_mem_" not in line:
            continue  # most events carry neither; skip parsing them
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line torn by a crash
        if not isinstance(event, dict):
            continue
        if event.get("type") == "run_started":
            if event.get("memory_signature") == signature:
                started, after = (float(event.get("time") or 0.0), event), []
            elif started is not None:
                break  # a later launch with other settings: stop at this run's measurements
        elif started is not None and any(k in event for k in MEASURED_KEYS):
            after.append(event)
    return started, after
