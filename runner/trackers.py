"""Experiment trackers (`training.report_to`): is the package there, and what to do if not.

Checked before a run starts (runner.launch.prepare) and again in the trainer, so a missing
tracker fails in a second with an install hint instead of after the model has loaded.
Light: finds packages with importlib, imports none of them.
"""

from __future__ import annotations

import importlib.util

from runner.problems import Problem

# report_to value -> (modules any one of which transformers accepts, the extra that installs one)
TRACKERS = {
    "tensorboard": (("tensorboard", "tensorboardX"), "tensorboard"),
    "wandb": (("wandb",), "wandb"),
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def tracker_problem(report_to: str) -> Problem | None:
    """An error when `report_to` names a tracker whose package is not importable here."""
    if report_to not in TRACKERS:
        return None
    modules, extra = TRACKERS[report_to]
    if any(_installed(m) for m in modules):
        return None
    return Problem("error", f"report_to = {report_to!r} needs the {modules[0]} package, which is not installed",
                   key="training.report_to",
                   hint=f"pip install 'tunedeck[{extra}]' (or pip install {modules[0]}), or set report_to = \"none\"")


def require_tracker(report_to: str) -> None:
    """Raise MissingDependency (the trainer's failure class) when the tracker is missing."""
    problem = tracker_problem(report_to)
    if problem is not None:
        from runner.diagnose import MissingDependency

        raise MissingDependency(f"training.report_to: {problem.message}; {problem.hint}")
