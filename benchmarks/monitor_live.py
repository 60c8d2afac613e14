"""A fake run writing 5,000 log lines/s and 50 events/s for 60 s while the monitor follows it:
lag from a line's write to the frame that shows it (p50/p95/max), and how long key presses take.

Targets: p95 lag under 250 ms; keys still answer promptly. Baseline, measured in the same run:
the same measurements with an idle run (no writer), so the ratios show what the load costs.

    python benchmarks/monitor_live.py [--seconds 60] [--lines-per-s 5000] [--events-per-s 50]
"""

from __future__ import annotations

import argparse
import asyncio
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

    lags: list[float] = []
    keys: list[float] = []
    plot_keys: list[float] = []
    run = RunDir(run_path)
    app = MonitorTestApp(run_path.parent, attach=run)
    original = LogView.render_line

    def timed_render_line(self: LogView, y: int):
        # Called as the compositor draws a frame: the bottom row's write time gives the lag.
        strip = original(self, y)
        if y == self.scrollable_content_region.height - 1:
            text = strip.text
            if text.startswith("t="):
                lags.append(time.time() - float(text[2:].split()[0]))
        return strip

    LogView.render_line = timed_render_line
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            while not (isinstance(app.screen, MonitorScreen) and app.screen.loaded):
                await pilot.pause(0.05)
            writer = subprocess.Popen([sys.executable, "-c", WRITER, *writer_args]) if writer_args else None
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                for key in ("pageup", "end"):  # leave and rejoin the end of the log
                    t = time.perf_counter()
                    await pilot.press(key)
                    keys.append(time.perf_counter() - t)
                t = time.perf_counter()
                await pilot.press("x")  # switch the plot axis: redraws both plots
                plot_keys.append(time.perf_counter() - t)
                await pilot.pause(0.25)
            if writer is not None:
                writer.wait()
            lines = app.screen.query_one(LogView).total
            points = len(app.screen.model.train)
    finally:
        LogView.render_line = original
    return {"lags": lags, "keys": keys, "plot_keys": plot_keys, "lines": lines, "points": points}


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
    lags, keys = result["lags"], result["keys"]
    print(f"writer: {args.lines_per_s:,.0f} lines/s + {args.events_per_s:,.0f} events/s for {args.seconds:g} s "
          f"-> monitor saw {result['lines']:,} lines, {result['points']:,} loss points")
    if not lags:
        raise SystemExit("no frames measured")
    print(f"write-to-screen lag over {len(lags)} frames: p50 {pct(lags, 50) * 1000:.0f} ms, "
          f"p95 {pct(lags, 95) * 1000:.0f} ms, max {max(lags) * 1000:.0f} ms "
          f"(target p95 < 250 ms: {'met' if pct(lags, 95) < 0.25 else 'MISSED'})")
    for name, key in (("log keys (PageUp/End)", "keys"), ("plot key (x: redraw both plots)", "plot_keys")):
        loaded, idle_ = result[key], base[key]
        print(f"{name} under load: p50 {pct(loaded, 50) * 1000:.0f} ms, p95 {pct(loaded, 95) * 1000:.0f} ms; "
              f"idle baseline p50 {pct(idle_, 50) * 1000:.0f} ms, p95 {pct(idle_, 95) * 1000:.0f} ms "
              f"(ratio p95 x{pct(loaded, 95) / pct(idle_, 95):.1f})")


if __name__ == "__main__":
    main()
