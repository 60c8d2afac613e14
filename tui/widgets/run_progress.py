"""One line of progress: state, step / total with a bar, epoch, elapsed, ETA, tokens/s."""

from __future__ import annotations

import time

from rich.console import Group
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from runner.run_model import RunModel

STATE_STYLES = {"running": "bold green", "starting": "bold cyan", "stopping": "bold yellow", "finished": "bold blue",
                "stopped": "bold yellow", "failed": "bold red", "lost": "bold magenta"}


def duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "-"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def elapsed(model: RunModel, now: float | None = None) -> float | None:
    """Seconds since this launch began: the trainer's own figure once it ended, else counted live."""
    if model.terminal is not None and model.terminal.get("elapsed_s") is not None:
        return float(model.terminal["elapsed_s"])
    if model.started is None:
        return None
    if model.terminal is not None:  # ended without a figure: up to its last event
        return float(model.terminal.get("time", 0)) - float(model.started.get("time", 0))
    return (now if now is not None else time.time()) - float(model.started.get("time", 0))


class RunProgress(Static):
    """Updated on every batch from disk: rebuilt only when what it shows changed, and without a
    layout pass (its height is fixed by the stylesheet)."""

    _shown: tuple | None = None

    def show(self, model: RunModel, state: str, now: float | None = None, epochs: float | None = None) -> None:
        total = model.total_steps
        step = model.step
        epoch = model.epoch
        tokens = model.latest("tokens_per_s")
        eta = model.latest("eta_s") if state == "running" else None
        spent = duration(elapsed(model, now))
        key = (state, step, total, epoch, epochs, spent, eta, tokens)
        if key == self._shown:
            return
        self._shown = key
        done = (step / total) if total else 0.0
        bar = ProgressBar(total=float(total or 1), completed=float(min(step, total or 1)), width=None)
        parts = [
            (f"{state}", STATE_STYLES.get(state, "bold")),
            ("  step ", "dim"), (f"{step:,}/{total:,}" if total else f"{step:,}", "bold"),
            (f" ({done:.0%})" if total else "", ""),
            ("  epoch ", "dim"), (f"{epoch:.2f}" + (f"/{epochs:g}" if epochs else "") if epoch is not None else "-", ""),
            ("  elapsed ", "dim"), (spent, ""),
            ("  ETA ", "dim"), (duration(eta) if eta is not None else "-", ""),
            ("  tok/s ", "dim"), (f"{tokens:,.0f}" if isinstance(tokens, (int, float)) else "-", ""),
        ]
        line = Text.assemble(*parts, no_wrap=True, overflow="ellipsis")
        grid = Table.grid(expand=True)
        grid.add_column()
        grid.add_row(line)
        self.update(Group(grid, bar), layout=False)
