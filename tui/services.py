"""The runner services the editor calls that may be missing or slow: estimator, GPU probe, launcher.

Each is imported when first needed, so a missing one degrades the editor (the gauge says why)
instead of breaking it, and none of their import cost lands on the first frame.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable


def optional_module(name: str, *needs: str) -> ModuleType | None:
    """The module when it imports and has every attribute in `needs` (a half-written one counts as missing)."""
    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    return module if all(hasattr(module, attr) for attr in needs) else None


def estimator() -> ModuleType | None:
    return optional_module("runner.estimate", "estimate", "estimate_for", "verdict", "EstimateError")


@dataclass
class NoProbe:
    """Stands in for `runner.gpu.GpuReport` when the probe module is not installed: no GPUs known."""

    available: bool = False
    reason: str = "the GPU probe (runner.gpu) is not available"
    driver: str | None = None
    gpus: list[Any] = field(default_factory=list)


def probe_gpus() -> Any:
    """runner.gpu.probe(), or a NoProbe report when the probe is missing or fails."""
    gpu = optional_module("runner.gpu")
    if gpu is None:
        return NoProbe()
    try:
        return gpu.probe()
    except Exception as exc:  # noqa: BLE001 - a failing driver query must not take the editor down
        return NoProbe(reason=f"GPU probe failed: {exc}")


Probe = Callable[[], Any]
