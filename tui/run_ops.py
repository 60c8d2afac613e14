"""The UI side of run control: announcing a run's end. Everything else about runs (launch, plan,
stop, resume, state) is the runs service, runner.run_ops, which the CLI uses too."""

from __future__ import annotations

from typing import Any

from runner.rundir import RunDir


class EndAnnouncer:
    """Rings and notifies once per run end (a run's launch segment), whichever screen noticed it
    first: the monitor and the runs list both watch for ends. One per app (`TunedeckApp.run_ends`)."""

    def __init__(self) -> None:
        self._announced: set[tuple[str, Any, Any]] = set()

    def announce(self, app: Any, run: RunDir, state: str) -> None:
        status = run.read_status()
        key = (str(run.path), status.get("started"), status.get("segment_started"))
        if key in self._announced:
            return
        self._announced.add(key)
        app.bell()
        severity = "error" if state in ("failed", "lost") else "information"
        app.notify(f"{run.name} {state}", title="Run ended", severity=severity, timeout=8)
