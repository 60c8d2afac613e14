"""Terminal plots of a run (textual-plotext): loss (raw, smoothed, eval on the same axes) and
learning rate with grad norm; x by step or epoch. Long runs are thinned to a few points per column.

A redraw costs O(points drawn + points new since the last one), not O(history): each plot keeps,
per curve, the indices of its finite points and the smoothed loss, extended as the run grows
(`Curve`), so a 100k-step run redraws as fast as a short one. A plot that is not on screen
(narrow layout, side pane shown) is drawn when it is shown again."""

from __future__ import annotations

import math
from array import array
from typing import Any, Sequence

from textual.app import ComposeResult
from textual.containers import Vertical
from textual_plotext import PlotextPlot

from runner.run_model import RunModel, Series

SMOOTHING = 0.9  # EMA weight of the past: smoothed = 0.9 * smoothed + 0.1 * loss
MARKER = "braille"  # 2x4 dots per cell: the most resolution a terminal gives


def evenly(items: Sequence, limit: int) -> Sequence:
    """At most `limit` of `items`, evenly picked (the last one always kept)."""
    if len(items) > limit > 1:
        stride = len(items) / limit
        return [items[int(i * stride)] for i in range(limit - 1)] + [items[-1]]
    return items


def thin(xs: Sequence[float], ys: Sequence[float], limit: int) -> tuple[list[float], list[float]]:
    """At most `limit` finite (x, y) points, evenly picked (the last point always kept)."""
    pairs = evenly([(x, y) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y)], limit)
    return [p[0] for p in pairs], [p[1] for p in pairs]


class Ema:
    """Exponential moving average, skipping NaNs (as TensorBoard does), debiased for the first
    points; resumable, so a growing curve extends it with its new points only."""

    def __init__(self, weight: float = SMOOTHING) -> None:
        self.weight = weight
        self.avg, self.n = 0.0, 0

    def extend(self, values: Sequence[float], out: array) -> None:
        """Append the smoothed value of each of `values` to `out`."""
        weight, avg, n, isfinite = self.weight, self.avg, self.n, math.isfinite
        for v in values:
            if isfinite(v):
                avg = weight * avg + (1 - weight) * v
                n += 1
            # Dividing by 1 - weight^n removes the pull toward the initial 0.
            out.append(avg / (1 - weight**n) if n else math.nan)
        self.avg, self.n = avg, n


def smooth(values: Sequence[float], weight: float = SMOOTHING) -> array:
    """The whole series smoothed (see `Ema`)."""
    out = array("d")
    Ema(weight).extend(values, out)
    return out


class Curve:
    """One (x, y) curve of a growing run, kept incrementally: the indices of its finite points (and,
    with `smoothed`, the EMA of y). `update` costs O(new points); `thin` O(limit). Same output as
    `thin(xs, ys)` / `thin(xs, smooth(ys))` over the whole history.

    The columns are the run's own arrays, which only grow, except when a resumed run truncates
    them (`Series.generation` changes) or the model is replaced: then it starts over."""

    def __init__(self, smoothed: bool = False) -> None:
        self.smoothed = smoothed
        self._source: tuple[array, array, int] | None = None
        self._finite = array("L")  # indices i where xs[i] and ys[i] (or the smoothed y) are finite
        self._ema = array("d")
        self._smoother = Ema()
        self._seen = 0

    def update(self, xs: array, ys: array, generation: int = 0) -> None:
        source = self._source
        if source is None or source[0] is not xs or source[1] is not ys or source[2] != generation \
                or len(ys) < self._seen:
            self._source = (xs, ys, generation)
            self._finite = array("L")
            self._ema = array("d")
            self._smoother = Ema()
            self._seen = 0
        n = min(len(xs), len(ys))
        if n <= self._seen:
            return
        isfinite = math.isfinite
        values: Sequence[float] = ys
        if self.smoothed:
            self._smoother.extend(ys[self._seen:n], self._ema)
            values = self._ema
        if isfinite(sum(xs[self._seen:n])) and isfinite(sum(values[self._seen:n])):
            self._finite.extend(range(self._seen, n))  # all finite (the usual case): no per-point test
        else:
            self._finite.extend(i for i in range(self._seen, n) if isfinite(xs[i]) and isfinite(values[i]))
        self._seen = n

    def thin(self, limit: int) -> tuple[list[float], list[float]]:
        if self._source is None:
            return [], []
        xs = self._source[0]
        ys = self._ema if self.smoothed else self._source[1]
        picked = evenly(self._finite, limit)
        return [xs[i] for i in picked], [ys[i] for i in picked]


class _RunPlot(PlotextPlot):
    """A plot thinned to its own width: drawn again when that width changes (the first draw can
    come before layout settles, and a resized terminal deserves the resolution it has). While it
    is not on screen, drawing waits until it is shown."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last: tuple[RunModel, str] | None = None
        self._drawn_width = -1
        self._pending = False
        self._curves: dict[str, Curve] = {}  # incremental curves by name, so a redraw adds only new points

    def show(self, model: RunModel, x_axis: str) -> None:
        self._last = (model, x_axis)
        if not self.is_on_screen:
            self._pending = True
            return
        self._pending = False
        self._drawn_width = self.size.width
        self.draw(model, x_axis)

    def on_show(self) -> None:
        if self._pending and self._last is not None:
            self.show(*self._last)

    def on_resize(self) -> None:
        if self._last is not None and self.size.width != self._drawn_width:
            self.show(*self._last)

    def curve(self, name: str, series: Series, x: str, y: str, smoothed: bool = False) -> Curve:
        """The incremental curve `name` of `series[x]` against `series[y]`, brought up to date."""
        curve = self._curves.get(name)
        if curve is None:
            curve = self._curves[name] = Curve(smoothed)
        curve.update(series[x], series[y], series.generation)
        return curve

    def draw(self, model: RunModel, x_axis: str) -> None:
        raise NotImplementedError


class LossPlot(_RunPlot):
    def draw(self, model: RunModel, x_axis: str) -> None:
        plt = self.plt
        plt.clear_data()
        limit = max(20, self.size.width * 2)
        plt.title(f"loss · x: {x_axis}")
        drawn = False
        if len(model.train):
            xs, ys = self.curve(f"train {x_axis}", model.train, x_axis, "loss").thin(limit)
            if xs:
                plt.plot(xs, ys, label="train", marker=MARKER, color="cyan")
                sx, sy = self.curve(f"smoothed {x_axis}", model.train, x_axis, "loss", smoothed=True).thin(limit)
                plt.plot(sx, sy, label="smoothed", marker=MARKER, color="blue+")
                drawn = True
        ex, ey = self.curve(f"eval {x_axis}", model.evals, x_axis, "eval_loss").thin(limit)
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
        plt.title(f"learning rate (left) · grad norm (right) · x: {x_axis}")
        lx, ly = self.curve(f"lr {x_axis}", model.train, x_axis, "learning_rate").thin(limit)
        if lx:
            plt.plot(lx, ly, label="lr", marker=MARKER, color="green", yside="left")
        gx, gy = self.curve(f"gn {x_axis}", model.train, x_axis, "grad_norm").thin(limit)
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
