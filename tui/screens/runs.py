"""Every known run (runner.runs_home's index), refreshed live: open any run's monitor, compare two runs.

`tunedeck runs` opens here; a run launched earlier (from this TUI, another SSH session or the
CLI, in any directory) shows up with its state read from disk, still running or long finished.
State, progress, loss, best eval and duration come first so they fit in 80 columns (all but
duration even beside the widest state, "running (unsupervised)"); the line under the table
gives the highlighted run's failure reason and message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from runner.rundir import ACTIVE_STATES, FINAL_STATES, RunDir

from ..markup import safe
from ..widgets.run_progress import STATE_STYLES, duration
from ..worker_failures import ShowsWorkerFailures

REFRESH_INTERVAL = 2.0
NAME_WIDTH = 20  # "demo-20261201-215420"; longer names keep their start and the timestamp (80x24 budget)
COLUMNS = ("run", "state", "progress", "loss", "best eval", "duration", "started", "preset", "reason")


def progress_cell(info: Any) -> str:
    """'43% 520/1200', or '43% 520' when that would take more than 12 cells (80x24 budget)."""
    if info.progress is None:
        return "-" if info.step is None else str(info.step)
    full = f"{info.progress:.0%} {info.step}/{info.total_steps}"
    return full if len(full) <= 12 else f"{info.progress:.0%} {info.step}"


def short_name(name: str, width: int = NAME_WIDTH) -> str:
    """`name` in `width` cells: the start, an ellipsis and the end (the timestamp tells runs apart)."""
    if len(name) <= width:
        return name
    tail = min(15, width - 5)
    return name[: width - tail - 1] + "…" + name[-tail:]


def column_widths(rows: list[Any]) -> dict[str, int]:
    """Each column as wide as its widest cell (the run name: NAME_WIDTH). Set before the rows are
    added, so the first picture is already right (auto-sized columns are measured after a paint)."""
    widths = {column: cell_len(column) for column in COLUMNS}
    for row in rows:
        for column, cell in zip(COLUMNS, row.cells):
            widths[column] = max(widths[column], cell.cell_len if isinstance(cell, Text) else cell_len(str(cell)))
    widths["run"] = NAME_WIDTH
    return widths


def detail_line(info: Any) -> str:
    """One line on what ended a run: reason and message (failed / stopped), or where a lost run was."""
    if info.state == "lost":
        last = (info.log_tail.strip().splitlines() or ["(empty log)"])[-1]
        return f"{info.name}: lost (its processes are gone without recording an end); last output: {last[:200]}"
    if info.state in ("failed", "stopped") and (info.reason or info.message):
        return f"{info.name}: {info.state} ({info.reason or '?'}): {info.message or ''}".rstrip(": ")
    if info.unsupervised:
        return f"{info.name}: its supervisor died; the trainer goes on (s in its monitor, or tunedeck stop, stops it)"
    return ""


class BestEval:
    """Lowest eval loss in a run's events.jsonl, reading only the bytes appended since last time
    and parsing only the evaluation lines."""

    def __init__(self, path: Path) -> None:
        from runner.events import EventTail

        self.tail = EventTail(path, contains=b'"eval_loss"')
        self.best: float | None = None

    def update(self) -> float | None:
        for event in self.tail.poll():
            value = event.get("eval_loss")
            if isinstance(value, (int, float)) and (self.best is None or value < self.best):
                self.best = float(value)
        return self.best


@dataclass
class Row:
    run: RunDir
    state: str
    cells: tuple[Any, ...]
    detail: str = ""  # the reason and message of a failed / stopped run, the log tail of a lost one


@dataclass
class RunsListed(Message):
    """The listing worker's result: the rows, newest first, and the runs found gone from disk."""

    rows: list[Row]
    removed: list[str]


class RunsScreen(ShowsWorkerFailures, Screen):
    BINDINGS = [
        Binding("enter", "open", "Monitor"),
        Binding("m", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("t", "try_model", "Try model"),
        Binding("e", "editor", "Editor"),
        Binding("escape", "leave", "Quit"),  # on the screen `tunedeck runs` started on
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, runs_dir: str | Path | None = None, compare_with: RunDir | None = None,
                 monitor_options: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.runs_dir = runs_dir
        self.compare_with = compare_with
        self.monitor_options = monitor_options or {}
        self.rows: dict[str, Row] = {}
        self.marked: RunDir | None = None
        self._best: dict[Path, BestEval] = {}
        self._states: dict[str, str] = {}
        self._removed_shown: set[str] = set()
        self._widths: dict[str, int] = {}  # the table's column widths now (column_widths)

    def compose(self) -> ComposeResult:
        yield Header(icon="")
        table: DataTable = DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        for column in COLUMNS:
            table.add_column(column, key=column, width=NAME_WIDTH if column == "run" else None)
        yield table
        yield Static("", id="runs-hint")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        from runner.registry import runs_root

        self.title = "runs"
        self.sub_title = str(runs_root(self.runs_dir)) if self.runs_dir is not None else "every known run"
        self.query_one("#runs-hint", Static).update(self.hint())
        self.refresh_runs()
        self.set_interval(REFRESH_INTERVAL, self.refresh_runs)
        self.query_one(DataTable).focus()

    def hint(self) -> str:
        if self.compare_with is not None:
            return f"Pick a run to compare with {self.compare_with.name} (Enter)"
        return "Enter: monitor · t: try the model · m: mark · c: compare with the marked run · e: editor"

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs", name="list runs")
    def refresh_runs(self) -> None:
        from runner.registry import listing
        from runner.runs_home import forget

        found = listing(self.runs_dir)
        rows = []
        for info in reversed(found.runs):  # newest first
            detail = detail_line(info)
            try:
                best = self._best.setdefault(info.run.events, BestEval(info.run.events)).update()
            except OSError as exc:  # one damaged run dir (events.jsonl not a file): say so on its row
                best = None
                detail = f"{info.name}: cannot read events.jsonl ({exc.strerror or exc})"
            progress = progress_cell(info)
            started = time.strftime("%m-%d %H:%M", time.localtime(info.started)) if info.started else "-"
            cells = (short_name(info.name), Text(info.label, style=STATE_STYLES.get(info.state, "")), progress,
                     f"{info.last_loss:.4f}" if info.last_loss is not None else "-",
                     f"{best:.4f}" if best is not None else "-",
                     duration(info.duration), started, info.preset or "-", info.reason or "")
            rows.append(Row(info.run, info.state, cells, detail))
        removed = [str(p) for p in found.removed if str(p) not in self._removed_shown]
        for path in found.removed:
            forget(path)  # shown once (below), then dropped from the index
        self.post_message(RunsListed(rows, removed))

    def on_runs_listed(self, message: RunsListed) -> None:
        self._show(message.rows, message.removed)

    def _show(self, rows: list[Row], removed: list[str] | None = None) -> None:
        if removed:
            self._removed_shown.update(removed)
            self.notify("\n".join(safe(p, 300) for p in removed), title="Gone from disk, removed from the list",
                        timeout=10)
        table = self.query_one(DataTable)
        current = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value if table.row_count else None
        widths = column_widths(rows)
        if widths != self._widths:
            self._widths = widths
            table.clear(columns=True)
            for column in COLUMNS:
                table.add_column(column, key=column, width=widths[column])
        else:
            table.clear()
        self.rows = {}
        for row in rows:
            name = row.run.name
            self.rows[name] = row
            cells = list(row.cells)
            if self.marked is not None and self.marked.path == row.run.path:
                cells[0] = Text(short_name(f"* {name}"), style="bold")
            table.add_row(*cells, key=name)
            before = self._states.get(name)
            if before in ACTIVE_STATES and row.state in (*FINAL_STATES, "lost"):
                self.app.run_ends.announce(self.app, row.run, row.state)
            self._states[name] = row.state
        if current in self.rows:
            table.move_cursor(row=table.get_row_index(current))
        if not rows:
            where = f" in {self.sub_title}" if self.runs_dir is not None else ""
            self.query_one("#runs-hint", Static).update(f"No runs{where} yet: launch one from the editor (F5).")
        else:
            self._show_detail()

    @on(DataTable.RowHighlighted)
    def _show_detail(self) -> None:
        run = self.selected()
        row = self.rows.get(run.name) if run is not None else None
        text = Text(self.hint(), style="dim")
        if row is not None and row.detail:
            text = Text.assemble((row.detail, STATE_STYLES.get(row.state, "")), "\n", text)
        self.query_one("#runs-hint", Static).update(text)

    def selected(self) -> RunDir | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        row = self.rows.get(key)
        return row.run if row else None

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        run = self.selected()
        if run is None:
            return
        if self.compare_with is not None:
            from .compare import CompareScreen

            self.app.switch_screen(CompareScreen(self.compare_with, run))
            return
        from .monitor import MonitorScreen

        self.app.push_screen(MonitorScreen(run, **self.monitor_options))

    def action_try_model(self) -> None:
        from .try_screen import TryScreen

        run = self.selected()
        if run is not None:
            self.app.push_screen(TryScreen(run))

    def action_mark(self) -> None:
        run = self.selected()
        self.marked = None if run is None or (self.marked and self.marked.path == run.path) else run
        if self.marked is not None:
            self.notify(f"Marked {run.name}: move to another run and press c to compare.", timeout=4)
        self.refresh_runs()

    def action_compare(self) -> None:
        run = self.selected()
        if run is None:
            return
        other = self.marked or self.compare_with
        if other is None or other.path == run.path:
            self.notify("Mark a run with m first, then pick the other one and press c.", severity="warning")
            return
        from .compare import CompareScreen

        self.app.push_screen(CompareScreen(other, run))

    def action_editor(self) -> None:
        from .editor import EditorScreen

        while len(self.app.screen_stack) > 1 and not isinstance(self.app.screen, EditorScreen):
            self.app.pop_screen()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "leave":  # Esc quits where `tunedeck runs` started (no editor opened yet) ...
            return self.app.runs_is_home and self.compare_with is None
        if action == "back":  # ... and goes back everywhere else
            return not (self.app.runs_is_home and self.compare_with is None)
        return True

    def action_leave(self) -> None:
        self.app.exit()

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
