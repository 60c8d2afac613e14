"""Two runs side by side: the config fields that differ (only those) and both loss curves on one plot."""

from __future__ import annotations

import math
from dataclasses import dataclass

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header
from textual_plotext import PlotextPlot

from runner.rundir import RunDir

from runner import run_ops
from runner.run_model import RunModel
from ..run_watch import EventReader
from ..widgets.run_plots import MARKER, smooth, thin
from ..worker_failures import ShowsWorkerFailures

COLOURS = (("cyan", "orange"), ("green", "magenta"))


def load_model(run: RunDir) -> RunModel:
    """The whole event history of a run, folded a chunk at a time."""
    model, reader = RunModel(), EventReader(run.events)
    while True:
        events, more = reader.poll()
        model.fold(events)
        if not more:
            return model


def config_differences(a: RunDir, b: RunDir) -> list[tuple[str, str, str]]:
    from runner import presets

    ca, cb = run_ops.load_config(a), run_ops.load_config(b)
    if ca is None or cb is None:
        return [("config.toml", "unreadable" if ca is None else "ok", "unreadable" if cb is None else "ok")]
    return [(spec.key, repr(va), repr(vb)) for spec, va, vb in presets.differences(ca, cb)]


@dataclass
class BothLoaded(Message):
    """The loading worker's result: the folded histories of runs A and B."""

    models: tuple[RunModel, RunModel]


class CompareScreen(ShowsWorkerFailures, Screen):
    BINDINGS = [Binding("escape", "back", "Back"), Binding("x", "axis", "Step/epoch")]

    def __init__(self, a: RunDir, b: RunDir) -> None:
        super().__init__()
        self.a, self.b = a, b
        self.models: tuple[RunModel, RunModel] | None = None
        self.x_axis = "step"

    def compose(self) -> ComposeResult:
        yield Header(icon="")
        yield DataTable(id="compare-diff", cursor_type="row", zebra_stripes=True)
        yield PlotextPlot(id="compare-plot")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = "compare"
        self.sub_title = f"A = {self.a.name}   B = {self.b.name}"
        table = self.query_one(DataTable)
        table.add_columns("field", f"A {self.a.name}", f"B {self.b.name}")
        differences = config_differences(self.a, self.b)
        for row in differences:
            table.add_row(*row)
        table.border_title = f"config: {len(differences)} difference(s)" if differences else "config: identical"
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, name="load both runs")
    def load(self) -> None:
        self.post_message(BothLoaded((load_model(self.a), load_model(self.b))))

    def on_both_loaded(self, message: BothLoaded) -> None:
        self.models = message.models
        self.draw()

    def draw(self) -> None:
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.title("loss: A vs B (smoothed train, eval)")
        plt.xlabel(self.x_axis)
        if self.models is None:
            return
        limit = max(20, plot.size.width * 2)
        for label, model, (train_colour, eval_colour) in zip("AB", self.models, COLOURS):
            x = model.train[self.x_axis]
            xs, ys = thin(x, smooth(model.train["loss"]), limit)
            if xs:
                plt.plot(xs, ys, label=f"{label} train", marker=MARKER, color=train_colour)
            ex, ey = thin(model.evals[self.x_axis], model.evals["eval_loss"], limit)
            if ex and any(math.isfinite(v) for v in ey):
                plt.plot(ex, ey, label=f"{label} eval", marker="dot", color=eval_colour)
        plot.refresh()

    def action_axis(self) -> None:
        self.x_axis = "epoch" if self.x_axis == "step" else "step"
        self.draw()

    def action_back(self) -> None:
        self.app.pop_screen()
