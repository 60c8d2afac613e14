"""What the monitor knows about a run, folded from its events.jsonl (see runner.events for the vocabulary).

Memory stays small however long the run: metric series are `array('d')` (8 bytes a point),
samples and warnings are bounded deques, and no event dict is kept beyond the last of each kind.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from typing import Any

NAN = float("nan")
MAX_SAMPLES = 200
MAX_WARNINGS = 200


def num(value: Any) -> float:
    """A metric as float; missing or non-numeric is NaN (so the arrays stay aligned)."""
    if type(value) is float:  # the common case first: this runs for every metric of every event
        return value
    if isinstance(value, bool) or value is None:
        return NAN
    try:
        return float(value)
    except (TypeError, ValueError):
        return NAN


def whole(value: Any, default: int | None) -> int | None:
    """A count (a step, a total) as int; `default` when missing or not a finite number (a damaged line)."""
    number = num(value)
    return int(number) if math.isfinite(number) else default


@dataclass
class Series:
    """Aligned columns of one kind of point (train logs or evals), in step order."""

    columns: tuple[str, ...]
    data: dict[str, array] = field(default_factory=dict)
    generation: int = 0  # bumped when points are dropped, so incremental readers start over

    def __post_init__(self) -> None:
        self.data = {c: array("d") for c in self.columns}

    def __len__(self) -> int:
        return len(self.data[self.columns[0]])

    def append(self, **values: float) -> None:
        for c in self.columns:
            self.data[c].append(values.get(c, NAN))

    def truncate_after(self, step: int) -> None:
        """Drop points logged after `step` (a resumed run replays them from its checkpoint)."""
        cut = bisect_right(self.data["step"], step)
        if cut < len(self):
            for c in self.columns:
                del self.data[c][cut:]
            self.generation += 1

    def __getitem__(self, column: str) -> array:
        return self.data[column]


@dataclass
class RunModel:
    train: Series = field(default_factory=lambda: Series(("step", "epoch", "loss", "learning_rate", "grad_norm",
                                                          "tokens_per_s", "time")))
    evals: Series = field(default_factory=lambda: Series(("step", "epoch", "eval_loss", "time")))
    samples: deque = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))
    warnings: deque = field(default_factory=lambda: deque(maxlen=MAX_WARNINGS))
    started: dict[str, Any] | None = None  # the latest run_started
    first_started: float | None = None  # time of the very first run_started (resumes keep it)
    last_log: dict[str, Any] | None = None
    last_checkpoint: dict[str, Any] | None = None
    terminal: dict[str, Any] | None = None  # run_finished / run_stopped / run_failed of the latest launch
    step: int = 0
    total_steps: int | None = None
    launches: int = 0
    nonfinite_losses: int = 0  # logs whose loss was NaN/inf (sanitised to null by the trainer)
    version: int = 0  # bumped on every fold, so widgets redraw only when something changed
    derived: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # incremental caches

    def finite(self, column: str) -> array:
        """The finite values of train[column], in order: kept up to date in O(new points), so
        readers that look at the whole history (diagnosis) need not rescan it on every redraw."""
        values = self.train[column]
        key = f"finite {column}"
        cached = self.derived.get(key)
        if cached is None or cached[0] is not values or cached[1] != self.train.generation or cached[2] > len(values):
            cached = [values, self.train.generation, 0, array("d")]
            self.derived[key] = cached
        seen, out = cached[2], cached[3]
        if seen < len(values):
            new = values[seen:]
            if math.isfinite(sum(new)):  # all finite (the usual case): one C-level copy
                out.extend(new)
            else:
                out.extend(v for v in new if math.isfinite(v))
            cached[2] = len(values)
        return out

    # --- folding -----------------------------------------------------------------------------------------
    def fold(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.fold_one(event)
        if events:
            self.version += 1

    def fold_one(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        step = event.get("step")
        step = int(step) if isinstance(step, (int, float)) and step == step else 0
        if kind == "log":  # the bulk of every file: kept lean
            if step > self.step:
                self.step = step
            loss = num(event.get("loss"))
            if "loss" in event and not math.isfinite(loss):
                self.nonfinite_losses += 1
            columns = self.train.data
            columns["step"].append(step)
            columns["epoch"].append(num(event.get("epoch")))
            columns["loss"].append(loss)
            columns["learning_rate"].append(num(event.get("learning_rate")))
            columns["grad_norm"].append(num(event.get("grad_norm")))
            columns["tokens_per_s"].append(num(event.get("tokens_per_s")))
            columns["time"].append(num(event.get("time")))
            self.last_log = event
            if event.get("total_steps"):
                self.total_steps = whole(event["total_steps"], self.total_steps)
            return
        self.step = max(self.step, step) if kind != "run_started" else step
        if kind == "eval":
            self.evals.append(step=step, epoch=num(event.get("epoch")), eval_loss=num(event.get("eval_loss")),
                              time=num(event.get("time")))
        elif kind == "sample":
            self.samples.append(event)
        elif kind == "warning":
            self.warnings.append(event)
            if event.get("code") == "nan_loss":
                self.nonfinite_losses += 1
        elif kind == "checkpoint":
            self.last_checkpoint = event
        elif kind == "run_started":
            self.launches += 1
            self.started = event
            self.terminal = None
            self.last_log = None
            if self.first_started is None:
                self.first_started = num(event.get("time"))
            if event.get("total_steps"):
                self.total_steps = whole(event["total_steps"], self.total_steps)
            if event.get("resumed_from") is not None:
                start = whole(event.get("start_step"), step) if event.get("start_step") is not None else step
                self.train.truncate_after(start)
                self.evals.truncate_after(start)
                self.step = start
        elif kind in ("run_finished", "run_stopped", "run_failed"):
            self.terminal = event

    # --- what the widgets show -------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """running / finished / stopped / failed / starting, from the events alone."""
        if self.terminal is not None:
            return {"run_finished": "finished", "run_stopped": "stopped", "run_failed": "failed"}[self.terminal["type"]]
        return "running" if self.started is not None else "starting"

    @property
    def epoch(self) -> float | None:
        column = self.train["epoch"]
        for value in reversed(column[-5:]):
            if not math.isnan(value):
                return value
        return None

    def latest(self, key: str) -> Any:
        """The newest value of `key` in a log event, or None."""
        return None if self.last_log is None else self.last_log.get(key)
