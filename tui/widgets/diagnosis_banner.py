"""A banner over the monitor naming what is going wrong (from runner.run_diagnosis) and what to try."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from runner.run_diagnosis import Finding


class DiagnosisBanner(Static):
    HELP = """
## Diagnosis
Problems read from the run's events: out of memory, NaN/inf loss, a loss that is not falling,
overfitting, gradient-norm spikes. `a` opens this run's config in the editor with the first
suggested change applied, to launch as a new run.
"""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.findings: list[Finding] = []
        self.display = False

    def show(self, findings: list[Finding]) -> None:
        if findings == self.findings:
            return
        self.findings = findings
        self.display = bool(findings)
        if not findings:
            return
        top = findings[0]
        self.set_class(top.severity == "error", "-error")
        text = Text()
        text.append(f"{top.title}: ", style="bold")
        text.append(top.detail)
        others = [f.title for f in findings[1:]]
        if others:
            text.append("  (also: " + "; ".join(others) + ")", style="dim")
        if top.changes:
            text.append("\n[a] ", style="bold")
            text.append("new run with: ")
        for i, suggestion in enumerate(top.suggestions[:3]):
            text.append("\n • " if i or not top.changes else "")
            text.append(suggestion.title)
        self.update(text)
