"""Confirm a launch: the exact command, the run directory, the GPUs it will use (free memory, other
processes on them) and the memory estimate. Confirming starts the detached run and opens its monitor.
A config with validation errors is refused here too, whoever opened the dialog.

"Where" picks this machine or SLURM. Launching here is checked against this machine (a GPU preset
is refused on a login node without a GPU); SLURM shows the fields of `tunedeck run --slurm` and the
exact sbatch command and script before submitting, and is never refused for this machine's hardware."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any, Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, RadioButton, RadioSet, Static
from textual.worker import Worker, WorkerState

from runner.rundir import RunDir
from runner.schema import Config
from runner.validate import Context, check, context_from_report

from runner import run_ops

from ..services import estimator as estimator_module
from ..services import probe_gpus
from ..worker_failures import ShowsWorkerFailures

GIB = 1024**3
GO_LABELS = {"here": "Launch (Enter)", "slurm": "Submit (Enter)"}
SLURM_FIELDS = (  # (JobOptions field, label, placeholder): the options of `tunedeck run --slurm`
    ("nodes", "Nodes", "launch.num_machines"),
    ("gpus_per_node", "GPUs per node", "launch.num_processes"),
    ("partition", "Partition", "cluster default"),
    ("time", "Time limit", "HH:MM:SS"),
    ("account", "Account", "default"),
)


def selected_gpus(gpus: list[Any], gpu_ids: str) -> list[Any]:
    """The GPUs `launch.gpu_ids` picks ("all" or "0,2")."""
    if gpu_ids.strip() in ("", "all"):
        return list(gpus)
    wanted = {int(i) for i in gpu_ids.split(",") if i.strip().isdigit()}
    return [g for g in gpus if g.index in wanted]


def simulated_text(signature: str) -> str:
    """The simulated step's figure for these settings, if the editor ran one (Ctrl+E)."""
    from runner.simulate import recalled, summary_line

    result = recalled(signature)
    return summary_line(result) if result else "simulated: not run for these settings (Ctrl+E in the editor)"


@dataclass
class Probed(Message):
    """The probing worker's result: the GPU report and the problems found in the training data."""

    report: Any
    data_problems: list[Any] = field(default_factory=list)


@dataclass
class Started(Message):
    """The start worker's outcome: the run started or submitted, or why not (a refusal is a result)."""

    outcome: run_ops.Outcome


class LaunchDialog(ShowsWorkerFailures, ModalScreen[RunDir | None]):
    """Dismisses with the started run, or None when cancelled or refused."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("enter", "launch", "Launch", priority=True),
                Binding("d", "data", "Data")]

    def __init__(self, config: Config, preset_name: str, *, probe: Callable[[], Any] | None = None,
                 runs_dir: str | None = None) -> None:
        super().__init__(classes="dialog-screen")
        self.config = config
        self.preset_name = preset_name
        self.probe = probe or probe_gpus
        self.runs_dir = runs_dir
        self.plan: run_ops.Plan | None = None  # the argv and the exact run directory Enter creates
        self.errors: list[Any] = []
        self.data_problems: list[Any] = []  # runner.data_check, found in the probe worker
        self.report: Any = None
        self.launching = False
        self.where = "here"  # or "slurm"
        self.slurm_plan: tuple[Any, list[str], str] | None = None  # (run dir, sbatch argv, script)
        self.slurm_errors: list[str] = []

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog dialog-wide", id="launch-dialog"):
            with Horizontal(id="launch-where-row"):
                yield Label("Where ")
                with RadioSet(id="launch-where"):
                    yield RadioButton("here", value=True, id="where-here")
                    yield RadioButton("SLURM", id="where-slurm")
            with Horizontal(id="slurm-fields"):
                for key, label, placeholder in SLURM_FIELDS:
                    with Vertical(classes="slurm-field"):
                        yield Label(label)
                        yield Input(placeholder=placeholder, id=f"slurm-{key}", compact=True)
            with VerticalScroll():
                yield Static(id="launch-command", classes="dialog-message")
                yield Static(id="launch-dir")
                yield Static("[dim]probing GPUs…[/]", id="launch-gpus")
                yield Static(id="launch-estimate")
                yield Static(id="launch-problems")
            with Horizontal(classes="dialog-buttons"):  # each names its key (plain text: no markup)
                yield Button(Text(GO_LABELS["here"]), id="launch-go", variant="primary", compact=True)
                yield Button(Text("Data (d)"), id="launch-data", compact=True)
                yield Button(Text("Cancel (Esc)"), id="launch-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#launch-dialog").border_title = f"Launch {self.preset_name}"
        self.query_one("#slurm-fields").display = False
        self.show_here()
        self.refresh_problems(Context())
        self.probe_gpus()

    # --- where: here or SLURM -----------------------------------------------------------------------
    @on(RadioSet.Changed, "#launch-where")
    def _where_changed(self, event: RadioSet.Changed) -> None:
        self.where = "slurm" if event.pressed.id == "where-slurm" else "here"
        self.query_one("#slurm-fields").display = self.where == "slurm"
        if self.where == "slurm":
            self.show_slurm()
        else:
            self.show_here()
        self.refresh_problems(context_from_report(self.report, launching=True) if self.report is not None
                              else Context())

    @on(Input.Changed, "#slurm-fields Input")
    def _slurm_field_changed(self) -> None:
        if self.where == "slurm":
            self.show_slurm()
            self.refresh_problems(Context())

    def slurm_options(self):
        """The dialog's SLURM fields as JobOptions, and what is wrong with them."""
        from runner.export.sbatch import JobOptions, check_name, check_time

        values = {key: self.query_one(f"#slurm-{key}", Input).value.strip() for key, _, _ in SLURM_FIELDS}
        problems, numbers = [], {}
        for key in ("nodes", "gpus_per_node"):
            if values[key]:
                if not values[key].isdigit() or int(values[key]) < 1:
                    problems.append(f"{key.replace('_', ' ')}: {values[key]!r} is not a whole number of at least 1")
                else:
                    numbers[key] = int(values[key])
        checked = {}
        for key, check in (("time", lambda v: check_time(v)), ("partition", lambda v: check_name(v, "partition")),
                           ("account", lambda v: check_name(v, "account"))):
            if values[key]:
                try:
                    checked[key] = check(values[key])
                except ValueError as exc:
                    problems.append(str(exc))
        options = JobOptions(nodes=numbers.get("nodes"), gpus_per_node=numbers.get("gpus_per_node"),
                             partition=checked.get("partition"), time=checked.get("time"),
                             account=checked.get("account"))
        return options, problems

    def show_slurm(self) -> None:
        import shutil

        from runner import slurm

        options, problems = self.slurm_options()
        if shutil.which("sbatch") is None:
            problems.append("sbatch not found on PATH: SLURM's client tools are needed (run this on a login node)")
        try:
            path, argv, script = self.slurm_plan = slurm.plan(self.config, self.preset_name, options, self.runs_dir)
        except ValueError as exc:  # e.g. a runs directory whose path cannot go on an #SBATCH line
            problems.append(str(exc))
            self.slurm_errors, self.slurm_plan = problems, None
            self.query_one("#launch-command", Static).update(Text(str(exc), style="red"))
            return
        self.slurm_errors = problems
        text = Text("Command\n", style="bold")
        text.append(shlex.join(argv))
        text.append("\n\nScript (written to the run directory, then submitted)\n", style="bold")
        text.append(script)
        self.query_one("#launch-command", Static).update(text)
        self.query_one("#launch-dir", Static).update(Text.assemble(
            ("Run directory\n", "bold"), str(path), ("  (every node must see it; `tunedeck runs` lists the job's "
                                                   "state from any login)", "dim")))
        self.query_one("#launch-go", Button).label = Text(GO_LABELS["slurm"])

    def show_here(self) -> None:
        self.query_one("#launch-go", Button).label = Text(GO_LABELS["here"])
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

    @work(thread=True, exclusive=True, exit_on_error=False, name="probe GPUs for launch")
    def probe_gpus(self) -> None:
        from runner.data_check import check as check_data

        report = self.probe()
        self.post_message(Probed(report, check_data(self.config)))

    def on_probed(self, message: Probed) -> None:
        report = self.report = message.report
        self.data_problems = message.data_problems
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
            est = estimator.estimate_for(self.config, budget)  # sized like the editor's gauge
        except Exception as exc:  # noqa: BLE001 - an unknown model: launch anyway, say why there is no estimate
            widget.update(f"[dim]No memory estimate: {exc}[/]")
            return
        text = Text("Memory estimate\n", style="bold")
        text.append(f"~{est.peak_bytes / GIB:.1f} GiB per GPU at peak ({est.phase})")
        if budget is not None:
            verdict = estimator.verdict(est.peak_bytes, budget)
            text.append(f": {verdict} in {budget / GIB:.1f} GiB free",
                        style={"fits": "green", "tight": "yellow"}.get(verdict, "red"))
        text.append("\n" + simulated_text(estimator.memory_signature(self.config)))
        widget.update(text)

    def refresh_problems(self, context: Context) -> None:
        slurm = self.where == "slurm"
        if slurm:
            context = Context()  # the cluster's nodes, not this machine, run it
        data = self.data_problems
        if slurm:  # read from here; the job reads them on the cluster's nodes: a note, not a refusal
            from runner.problems import Problem

            data = [Problem("warning", f"on this machine: {p.message}", key=p.key, file=p.file, line=p.line,
                            hint=p.hint) if p.is_error else p for p in data]
        problems = check(self.config, context) + data
        self.errors = [p for p in problems if p.is_error]
        if slurm:
            self.errors += self.slurm_errors
        elif self.plan is not None and self.plan.problem:
            self.errors.append(self.plan.problem)
        text = Text()
        for p in problems:
            text.append(f"{'error' if p.is_error else 'warning'}: ", style="red bold" if p.is_error else "yellow")
            where = f"{p.file}:{p.line}: " if p.file and p.line else ""  # data problems point into the data file
            text.append(f"{where}{p.key}: {p.message}\n" if p.key else f"{where}{p.message}\n")
        for message in self.slurm_errors if slurm else []:
            text.append("error: ", style="red bold")
            text.append(f"{message}\n")
        if self.errors:
            text.append("Submit refused: fix the errors first." if slurm else
                        "Launch refused: fix the errors first (for other hardware, choose SLURM or export "
                        "the job).", style="red bold")
        self.query_one("#launch-problems", Static).update(text)
        self.query_one("#launch-go", Button).disabled = bool(self.errors)

    @on(Button.Pressed, "#launch-go")
    def _go(self) -> None:
        self.action_launch()

    @on(Button.Pressed, "#launch-data")
    def _data(self) -> None:
        self.action_data()

    @on(Button.Pressed, "#launch-cancel")
    def _cancel(self) -> None:
        self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_data(self) -> None:
        from .data_screen import DataScreen

        self.app.push_screen(DataScreen(self.config, self.preset_name))

    def action_launch(self) -> None:
        if self.errors:
            self.notify("Fix the errors shown before launching.", title="Launch refused", severity="error")
            return
        if not self.launching:
            self.launching = True
            self.query_one("#launch-go", Button).disabled = True
            self.start()

    @work(thread=True, exclusive=True, exit_on_error=False, name="start the run")
    def start(self) -> None:
        if self.where == "slurm":
            outcome = self.submit()
        else:
            outcome = run_ops.launch(self.config, self.preset_name, self.runs_dir, planned=self.plan)
        self.post_message(Started(outcome))

    def submit(self) -> run_ops.Outcome:
        """Submit exactly what the dialog shows (the same run directory, so the same script)."""
        from runner import slurm
        from runner.problems import ConfigError
        from runner.rundir import RunDirError

        options, _ = self.slurm_options()
        run_dir = self.slurm_plan[0] if self.slurm_plan else None
        try:
            run = slurm.submit(self.config, preset_name=self.preset_name, options=options, runs_dir=self.runs_dir,
                               run_dir=run_dir)
        except slurm.SlurmError as exc:
            return run_ops.Outcome(False, f"not submitted: {exc}")
        except (ConfigError, RunDirError, FileExistsError, OSError) as exc:
            return run_ops.Outcome(False, f"not submitted: {exc}")
        return run_ops.Outcome(True, f"submitted SLURM job {run.read_status()['slurm']['job_id']}", run)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A start that failed unexpectedly leaves the dialog usable: try again. (Textual calls every
        class's handler along the MRO, so ShowsWorkerFailures still shows why; no super() call.)"""
        if event.worker.name == "start the run" and event.state == WorkerState.ERROR:
            self.launching = False
            self.query_one("#launch-go", Button).disabled = bool(self.errors)

    def on_started(self, message: Started) -> None:
        outcome = message.outcome
        if not outcome.ok:
            self.launching = False
            self.query_one("#launch-go", Button).disabled = False
            self.notify(outcome.message, title="Not launched", severity="error")
            return
        if self.where == "slurm":
            self.notify(outcome.message, title="Submitted")
        self.dismiss(outcome.run)
