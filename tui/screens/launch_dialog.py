"""Confirm a launch: the exact command, the run directory, the GPUs it will use (free memory, other
processes on them) and the memory estimate. Confirming starts the detached run and opens its monitor.
A config with validation errors is refused here too, whoever opened the dialog."""

from __future__ import annotations

import shlex
from typing import Any, Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from runner.rundir import RunDir
from runner.schema import Config
from runner.validate import Context, check, context_from_report

from runner import run_ops

from ..services import estimator as estimator_module
from ..services import probe_gpus

GIB = 1024**3


def selected_gpus(gpus: list[Any], gpu_ids: str) -> list[Any]:
    """The GPUs `launch.gpu_ids` picks ("all" or "0,2")."""
    if gpu_ids.strip() in ("", "all"):
        return list(gpus)
    wanted = {int(i) for i in gpu_ids.split(",") if i.strip().isdigit()}
    return [g for g in gpus if g.index in wanted]


class LaunchDialog(ModalScreen[RunDir | None]):
    """Dismisses with the started run, or None when cancelled or refused."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("enter", "launch", "Launch", priority=True)]

    def __init__(self, config: Config, preset_name: str, *, probe: Callable[[], Any] | None = None,
                 runs_dir: str | None = None) -> None:
        super().__init__(classes="dialog-screen")
        self.config = config
        self.preset_name = preset_name
        self.probe = probe or probe_gpus
        self.runs_dir = runs_dir
        self.plan: run_ops.Plan | None = None  # the argv and the exact run directory Enter creates
        self.errors: list[Any] = []
        self.report: Any = None
        self.launching = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog dialog-wide", id="launch-dialog"):
            with VerticalScroll():
                yield Static(id="launch-command", classes="dialog-message")
                yield Static(id="launch-dir")
                yield Static("[dim]probing GPUs…[/]", id="launch-gpus")
                yield Static(id="launch-estimate")
                yield Static(id="launch-problems")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Launch [enter]", id="launch-go", variant="primary", compact=True)
                yield Button("Cancel [esc]", id="launch-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#launch-dialog").border_title = f"Launch {self.preset_name}"
        self.plan = run_ops.plan(self.config, self.preset_name, self.runs_dir)
        command = Text("Command\n", style="bold")
        command.append(shlex.join(self.plan.argv))
        self.query_one("#launch-command", Static).update(command)
        where = Text.assemble(("Run directory\n", "bold"), str(self.plan.path))
        if self.plan.problem:
            where.append(f"\n{self.plan.problem}", style="red bold")
        else:
            where.append("  (runs detached: closing tunedeck or SSH does not stop it)", style="dim")
        self.query_one("#launch-dir", Static).update(where)
        self.refresh_problems(Context())
        self.probe_gpus()

    @work(thread=True, exclusive=True, name="probe GPUs for launch")
    def probe_gpus(self) -> None:
        report = self.probe()
        self.app.call_from_thread(self._probed, report)

    def _probed(self, report: Any) -> None:
        self.report = report
        gpus = list(report.gpus) if getattr(report, "available", False) else []
        text = Text("GPUs\n", style="bold")
        if not gpus:
            text.append(f"none: {getattr(report, 'reason', '')} (the run uses the CPU)", style="dim")
        used = selected_gpus(gpus, self.config.launch.gpu_ids)
        for g in gpus:
            mark = "→ " if g in used else "  "
            text.append(f"{mark}GPU{g.index} {g.name}: {g.free_bytes / GIB:.1f} of {g.total_bytes / GIB:.0f} GiB free",
                        style="" if g in used else "dim")
            if g.utilization_percent is not None:
                text.append(f", {g.utilization_percent}% busy")
            others = list(getattr(g, "processes", []))
            if others:
                listed = ", ".join(f"{p.name or p.pid} ({(p.used_bytes or 0) / GIB:.1f} GiB)" for p in others[:3])
                text.append(f"\n     in use by: {listed}", style="yellow")
            text.append("\n")
        self.query_one("#launch-gpus", Static).update(text)
        self.show_estimate(used)
        self.refresh_problems(context_from_report(report, launching=True))

    def show_estimate(self, used: list[Any]) -> None:
        estimator = estimator_module()
        widget = self.query_one("#launch-estimate", Static)
        if estimator is None:
            widget.update("[dim]No memory estimate: runner.estimate is not installed.[/]")
            return
        budget = min((g.free_bytes for g in used), default=None)
        try:
            est = estimator.estimate(self.config, budget)
        except Exception as exc:  # noqa: BLE001 - an unknown model: launch anyway, say why there is no estimate
            widget.update(f"[dim]No memory estimate: {exc}[/]")
            return
        text = Text("Memory estimate\n", style="bold")
        text.append(f"~{est.peak_bytes / GIB:.1f} GiB per GPU at peak ({est.phase})")
        if budget is not None:
            verdict = estimator.verdict(est.peak_bytes, budget)
            text.append(f": {verdict} in {budget / GIB:.1f} GiB free",
                        style={"fits": "green", "tight": "yellow"}.get(verdict, "red"))
        widget.update(text)

    def refresh_problems(self, context: Context) -> None:
        problems = check(self.config, context)
        self.errors = [p for p in problems if p.is_error]
        if self.plan is not None and self.plan.problem:
            self.errors.append(self.plan.problem)
        text = Text()
        for p in problems:
            text.append(f"{'error' if p.is_error else 'warning'}: ", style="red bold" if p.is_error else "yellow")
            text.append(f"{p.key}: {p.message}\n" if p.key else f"{p.message}\n")
        if self.errors:
            text.append("Launch refused: fix the errors first.", style="red bold")
        self.query_one("#launch-problems", Static).update(text)
        self.query_one("#launch-go", Button).disabled = bool(self.errors)

    @on(Button.Pressed, "#launch-go")
    def _go(self) -> None:
        self.action_launch()

    @on(Button.Pressed, "#launch-cancel")
    def _cancel(self) -> None:
        self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_launch(self) -> None:
        if self.errors:
            self.notify("Fix the errors shown before launching.", title="Launch refused", severity="error")
            return
        if not self.launching:
            self.launching = True
            self.query_one("#launch-go", Button).disabled = True
            self.start()

    @work(thread=True, exclusive=True, name="start the run")
    def start(self) -> None:
        outcome = run_ops.launch(self.config, self.preset_name, self.runs_dir, planned=self.plan)
        self.app.call_from_thread(self._started, outcome)

    def _started(self, outcome: run_ops.Outcome) -> None:
        if not outcome.ok:
            self.launching = False
            self.query_one("#launch-go", Button).disabled = False
            self.notify(outcome.message, title="Not launched", severity="error")
            return
        self.dismiss(outcome.run)
