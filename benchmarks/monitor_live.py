"""A fake run writing 5,000 log lines/s and 50 events/s for 60 s while the monitor follows it:
lag from a line's write to the frame that shows it (p50/p95/max), and how long key presses take.

Targets: p95 lag under 250 ms; keys still answer promptly. Baseline, measured in the same run:
the same measurements with an idle run (no writer), so the ratios show what the load costs.

Lag is measured per write: the writer stamps each 10 ms burst of lines with its time; every frame
records the newest stamp on the log's bottom row; a burst's lag is the time to the first frame
showing it (or a later line). Every burst counts, including those written while the event loop was
busy, except bursts whose wait overlapped a moment when the benchmark itself had scrolled the log
away from its end (PageUp ... End): a paused view does not show new lines, by design. The older
figure (the age of the bottom line at each repaint of it, paused views included) is printed too.

Key latency is from sending the key to the first frame drawn after its action ran. Keys are sent
as a terminal would (the driver's key event), not with Pilot.press, whose round trip also waits for
the whole process (writer-following thread included) to go idle: that measured the benchmark's
idle detection more than the app, and kept the log paused for a quarter of a second per press.

    python benchmarks/monitor_live.py [--seconds 60] [--lines-per-s 5000] [--events-per-s 50]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

WRITER = r"""
import json, sys, time
log_path, events_path, seconds, lines_per_s, events_per_s = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:6])
tick = 0.01  # write in 10 ms bursts, as a buffered trainer would
end = time.time() + seconds
step = 0
lines_due = events_due = 0.0
with open(log_path, "a", buffering=1 << 16) as log, open(events_path, "a") as events:
    while time.time() < end:
        now = time.time()
        lines_due += lines_per_s * tick
        events_due += events_per_s * tick
        n = int(lines_due); lines_due -= n
        log.write("".join(f"t={now:.6f} step {step} a line of trainer output, padded to a realistic width ....\n" for _ in range(n)))
        log.flush()
        for _ in range(int(events_due)):
            step += 1
            events.write(json.dumps({"type": "log", "time": now, "step": step, "loss": 2.0 / (1 + step / 500),
                                     "learning_rate": 1e-4, "grad_norm": 1.0, "epoch": step / 1000,
                                     "total_steps": 100000}) + "\n")
        events.flush()
        events_due -= int(events_due)
        time.sleep(max(0.0, tick - (time.time() - now)))
"""


async def watch(run_path: Path, seconds: float, writer_args: list[str] | None) -> dict:
    from fixtures.monitor_app import MonitorTestApp
    from runner.rundir import RunDir
    from tui.screens.monitor import MonitorScreen
    from tui.widgets.log_view import LogView

    repaints: list[float] = []  # age of the bottom line at each repaint of it (the older figure)
    shown: list[tuple[float, float]] = []  # (frame time, write stamp of the bottom line)
    pauses: list[tuple[float, float]] = []  # when the benchmark had scrolled the log away from its end
    frames: list[float] = []  # perf_counter() of each frame the app drew
    actions: list[float] = []  # perf_counter() when each key's action returned
    keys: list[float] = []
    plot_keys: list[float] = []
    run = RunDir(run_path)
    app = MonitorTestApp(run_path.parent, attach=run)
    original = LogView.render_line
    display, run_action = app._display, app.run_action

    def timed_render_line(self: LogView, y: int):
        # Called as the compositor draws a frame: the bottom row's write time gives the lag.
        strip = original(self, y)
        if y == self.scrollable_content_region.height - 1:
            text = strip.text
            if text.startswith("t="):
                now, stamp = time.time(), float(text[2:].split()[0])
                repaints.append(now - stamp)
                shown.append((now, stamp))
        return strip

    def timed_display(screen, renderable) -> None:
        display(screen, renderable)
        if renderable is not None:
            frames.append(time.perf_counter())

    async def timed_run_action(*args, **kwargs):
        result = await run_action(*args, **kwargs)
        actions.append(time.perf_counter())
        return result

    async def press(key: str, into: list[float]) -> None:
        from textual import events

        before = len(actions)
        t = time.perf_counter()
        app._driver.send_message(events.Key(key, key if len(key) == 1 else None))
        deadline = t + 30
        while len(actions) == before or frames[-1] < actions[before]:  # the frame showing the key's effect
            if time.perf_counter() > deadline:
                raise SystemExit(f"no frame after pressing {key}")
            await asyncio.sleep(0.001)
        into.append(next(f for f in frames if f >= actions[before]) - t)

    LogView.render_line = timed_render_line
    app._display, app.run_action = timed_display, timed_run_action
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            while not (isinstance(app.screen, MonitorScreen) and app.screen.loaded):
                await pilot.pause(0.05)
            writer = subprocess.Popen([sys.executable, "-c", WRITER, *writer_args]) if writer_args else None
            start = time.time()
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                paused = time.time()
                for key in ("pageup", "end"):  # leave and rejoin the end of the log
                    await press(key, keys)
                pauses.append((paused, time.time()))
                await press("x", plot_keys)  # switch the plot axis: redraws both plots
                await pilot.pause(0.25)
            if writer is not None:
                writer.wait()
                await pilot.pause(0.5)  # the last lines reach the screen
            lines = app.screen.query_one(LogView).total
            points = len(app.screen.model.train)
    finally:
        LogView.render_line = original
    lags, unshown = burst_lags(run.log, shown, pauses, start) if writer_args else ([], 0)
    return {"lags": lags, "unshown": unshown, "repaints": repaints, "keys": keys, "plot_keys": plot_keys,
            "lines": lines, "points": points, "excluded": pauses}


def burst_lags(log: Path, shown: list[tuple[float, float]], pauses: list[tuple[float, float]],
               start: float) -> tuple[list[float], int]:
    """Per write burst: time from its stamp to the first frame whose bottom line is that burst or a
    later one. Bursts whose wait overlapped a pause are left out; (lags, bursts never shown)."""
    stamps = []
    with open(log, "rb") as handle:
        for line in handle:
            if line.startswith(b"t="):
                stamp = float(line[2:line.index(b" ")])
                if not stamps or stamp != stamps[-1]:
                    stamps.append(stamp)
    newest, firsts = float("-inf"), []  # frames at which the newest stamp shown so far grew
    for at, stamp in shown:
        if stamp > newest:
            newest = stamp
            firsts.append((stamp, at))
    seen = [stamp for stamp, _ in firsts]
    lags, unshown = [], 0
    for stamp in stamps:
        if stamp < start:
            continue
        i = bisect.bisect_left(seen, stamp)
        if i == len(seen):
            unshown += 1
            continue
        at = firsts[i][1]
        if any(p0 < at and p1 > stamp for p0, p1 in pauses):
            continue
        lags.append(at - stamp)
    return lags, unshown


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else (values[0] if values else float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--lines-per-s", type=float, default=5000)
    parser.add_argument("--events-per-s", type=float, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(TUNEDECK_CONFIG_DIR=f"{tmp}/config", TUNEDECK_STATE_DIR=f"{tmp}/state",
                          TUNEDECK_CACHE_DIR=f"{tmp}/cache")
        from fixtures.monitor_app import history_run

        idle = history_run(Path(tmp) / "idle", "normal", steps=50)
        from runner import presets
        from runner.rundir import new_run_dir

        live = new_run_dir(Path(tmp) / "live", "live")
        presets.save(presets.require("demo").config, live.config)
        live.update_status(state="running", preset="live", started=time.time())
        base = asyncio.run(watch(idle.path, min(10.0, args.seconds), None))
        result = asyncio.run(watch(live.path, args.seconds, [str(live.log), str(live.events), str(args.seconds),
                                                              str(args.lines_per_s), str(args.events_per_s)]))
    lags, repaints = result["lags"], result["repaints"]
    print(f"writer: {args.lines_per_s:,.0f} lines/s + {args.events_per_s:,.0f} events/s for {args.seconds:g} s "
          f"-> monitor saw {result['lines']:,} lines, {result['points']:,} loss points")
    if not lags:
        raise SystemExit("no frames measured")
    print(f"write-to-screen lag over {len(lags):,} write bursts ({result['unshown']} never shown): "
          f"p50 {pct(lags, 50) * 1000:.0f} ms, p95 {pct(lags, 95) * 1000:.0f} ms, max {max(lags) * 1000:.0f} ms "
          f"(target p95 < 250 ms: {'met' if pct(lags, 95) < 0.25 else 'MISSED'})")
    print(f"  older figure, age of the bottom line at each of {len(repaints)} repaints (paused views included): "
          f"p50 {pct(repaints, 50) * 1000:.0f} ms, p95 {pct(repaints, 95) * 1000:.0f} ms, "
          f"max {max(repaints) * 1000:.0f} ms")
    for name, key in (("log keys (PageUp/End)", "keys"), ("plot key (x: redraw both plots)", "plot_keys")):
        loaded, idle_ = result[key], base[key]
        print(f"{name}, key to frame, under load: p50 {pct(loaded, 50) * 1000:.0f} ms, "
              f"p95 {pct(loaded, 95) * 1000:.0f} ms, max {max(loaded) * 1000:.0f} ms; idle baseline "
              f"p50 {pct(idle_, 50) * 1000:.0f} ms, p95 {pct(idle_, 95) * 1000:.0f} ms "
              f"(ratio p95 x{pct(loaded, 95) / pct(idle_, 95):.1f})")


if __name__ == "__main__":
    main()
