"""Terminal plots of a run (textual-plotext): loss (raw, smoothed, eval on the same axes) and
learning rate with grad norm; x by step or epoch. Long runs are thinned to a few points per column."""

from __future__ import annotations

import math
from array import array
from typing import Sequence

from textual.app import ComposeResult
from textual.containers import Vertical
from textual_plotext import PlotextPlot

from ..run_model import RunModel

SMOOTHING = 0.9  # EMA weight of the past: smoothed = 0.9 * smoothed + 0.1 * loss
MARKER = "braille"  # 2x4 dots per cell: the most resolution a terminal gives


def thin(xs: Sequence[float], ys: Sequence[float], limit: int) -> tuple[list[float], list[float]]:
    """At most `limit` finite (x, y) points, evenly picked (the last point always kept)."""
    pairs = [(x, y) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y)]
    if len(pairs) > limit > 1:
        stride = len(pairs) / limit
        picked = [pairs[int(i * stride)] for i in range(limit - 1)] + [pairs[-1]]
        pairs = picked
    return [p[0] for p in pairs], [p[1] for p in pairs]


def smooth(values: Sequence[float], weight: float = SMOOTHING) -> array:
    """Exponential moving average, skipping NaNs (as TensorBoard does), debiased for the first points."""
    out = array("d")
    avg, n = 0.0, 0
    for v in values:
        if math.isfinite(v):
            avg = weight * avg + (1 - weight) * v
            n += 1
        # Dividing by 1 - weight^n removes the pull toward the initial 0.
        out.append(avg / (1 - weight**n) if n else math.nan)
    return out


class _RunPlot(PlotextPlot):
    """A plot thinned to its own width: drawn again when that width changes (the first draw can
    come before layout settles, and a resized terminal deserves the resolution it has)."""

    _last: tuple[RunModel, str] | None = None
    _drawn_width = -1

    def show(self, model: RunModel, x_axis: str) -> None:
        self._last = (model, x_axis)
        self._drawn_width = self.size.width
        self.draw(model, x_axis)

    def on_resize(self) -> None:
        if self._last is not None and self.size.width != self._drawn_width:
            self.show(*self._last)

    def draw(self, model: RunModel, x_axis: str) -> None:
        raise NotImplementedError


class LossPlot(_RunPlot):
    def draw(self, model: RunModel, x_axis: str) -> None:
        plt = self.plt
        plt.clear_data()
        limit = max(20, self.size.width * 2)
        x = model.train[x_axis]
        losses = model.train["loss"]
        plt.title(f"loss · x: {x_axis}")
        drawn = False
        if len(losses):
            xs, ys = thin(x, losses, limit)
            if xs:
                plt.plot(xs, ys, label="train", marker=MARKER, color="cyan")
                sx, sy = thin(x, smooth(losses), limit)
                plt.plot(sx, sy, label="smoothed", marker=MARKER, color="blue+")
                drawn = True
        ex, ey = thin(model.evals[x_axis], model.evals["eval_loss"], limit)
        if ex:
            plt.plot(ex, ey, label="eval", marker=MARKER, color="orange")
            drawn = True
        if not drawn:
            plt.title("loss: waiting for the first log")
        self.refresh()


class RatePlot(_RunPlot):
    def draw(self, model: RunModel, x_axis: str) -> None:
        plt = self.plt
        plt.clear_data()
        limit = max(20, self.size.width * 2)
        x = model.train[x_axis]
        plt.title(f"learning rate (left) · grad norm (right) · x: {x_axis}")
        lx, ly = thin(x, model.train["learning_rate"], limit)
        if lx:
            plt.plot(lx, ly, label="lr", marker=MARKER, color="green", yside="left")
        gx, gy = thin(x, model.train["grad_norm"], limit)
        if gx:
            plt.plot(gx, gy, label="grad norm", marker=MARKER, color="magenta", yside="right")
        self.refresh()


class RunPlots(Vertical):
    HELP = """
## Plots
Training loss (raw and smoothed) with the eval loss on the same axes; learning rate and grad norm
below. `x` switches the x-axis between step and epoch; `p` cycles the plots on narrow terminals.
"""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.x_axis = "step"
        self._drawn: tuple[int, str, int] | None = None

    def compose(self) -> ComposeResult:
        yield LossPlot(id="loss-plot")
        yield RatePlot(id="rate-plot")

    def show(self, model: RunModel, force: bool = False) -> None:
        key = (model.version, self.x_axis, self.size.width)
        if key == self._drawn and not force:
            return
        self._drawn = key
        x_axis = self.x_axis if len(model.train) == 0 or self._has_epochs(model) else "step"
        self.query_one(LossPlot).show(model, x_axis)
        self.query_one(RatePlot).show(model, x_axis)

    @staticmethod
    def _has_epochs(model: RunModel) -> bool:
        return any(math.isfinite(e) for e in model.train["epoch"][-3:])

    def toggle_axis(self) -> str:
        self.x_axis = "epoch" if self.x_axis == "step" else "step"
        return self.x_axis

    def cycle(self) -> None:
        """Narrow layout shows one plot at a time (CSS): switch between loss and rate."""
        self.toggle_class("-rate")
