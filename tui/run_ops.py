"""The UI side of run control: announcing a run's end. Everything else about runs (launch, plan,
stop, resume, state) is the runs service, runner.run_ops, which the CLI uses too."""

from __future__ import annotations

from typing import Any

from runner.rundir import RunDir


def announce_end(app: Any, run: RunDir, state: str) -> None:
    """Bell and a notification once per run end, whichever screen noticed it first."""
    seen: set = app.__dict__.setdefault("_announced_runs", set())
    key = (str(run.path), run.read_status().get("started"), run.read_status().get("segment_started"))
    if key in seen:
        return
    seen.add(key)
    app.bell()
    severity = "error" if state in ("failed", "lost") else "information"
    app.notify(f"{run.name} {state}", title="Run ended", severity=severity, timeout=8)
