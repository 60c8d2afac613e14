"""Open a finished run with a 1,000,000-line output.log and 100,000 events: time to the monitor's
first frame with content (log at its end, curves drawn) and peak RSS of the TUI process.

Targets: under 2 s and under 150 MB. Baseline, measured in the same run: the same monitor on a
run with 10 lines and 10 events. Each measurement runs in a fresh interpreter (peak RSS is per process).

    python benchmarks/monitor_open.py [--lines 1000000] [--events 100000]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

CHILD = r"""
import asyncio, json, resource, sys, time
t0 = time.perf_counter()
sys.path[:0] = [sys.argv[2], sys.argv[2] + "/tests"]
from fixtures.monitor_app import MonitorTestApp
from runner.rundir import RunDir
from tui.screens.monitor import MonitorScreen
from tui.widgets.log_view import LogView

run = RunDir(__import__("pathlib").Path(sys.argv[1]))

async def main():
    app = MonitorTestApp(run.path.parent, attach=run)
    async with app.run_test(size=(160, 48)) as pilot:
        log_frame = None
        while True:
            screen = app.screen
            if log_frame is None and isinstance(screen, MonitorScreen):
                log = screen.query_one(LogView)
                if log.total and log.scroll_offset.y == log.max_scroll_y:
                    await pilot.pause(0)
                    log_frame = time.perf_counter() - t0
            screen = app.screen
            if isinstance(screen, MonitorScreen) and screen.loaded and screen._drawn_version >= 0:
                log = screen.query_one(LogView)
                if log.total and log.scroll_offset.y == log.max_scroll_y:
                    break
            await pilot.pause(0.01)
        await pilot.pause(0)  # one more frame: the content is on screen
        first_frame = time.perf_counter() - t0  # curves, progress and diagnosis drawn too
        last = screen.query_one(LogView).visible_text()[-1]
        points = len(screen.model.train)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"first_frame_s": first_frame, "log_frame_s": log_frame, "peak_rss": rss, "last_line": last, "points": points}))

asyncio.run(main())
"""


def write_run(base: Path, lines: int, events: int) -> Path:
    from runner import presets
    from runner.rundir import new_run_dir

    run = new_run_dir(base, f"bench-{lines}")
    presets.save(presets.require("demo").config, run.config)
    with open(run.log, "w", encoding="utf-8") as log:
        chunk = []
        for i in range(lines):
            chunk.append(f"2024-01-02 03:04:05 step {i // 10} line {i}: processing a batch of 16 sequences, loss n/a\n")
            if len(chunk) == 10000:
                log.writelines(chunk)
                chunk = []
        log.writelines(chunk)
    t0 = 1_700_000_000.0
    with open(run.events, "w", encoding="utf-8") as out:
        out.write(json.dumps({"type": "run_started", "time": t0, "step": 0, "total_steps": events}) + "\n")
        for step in range(1, events):
            kind = "eval" if step % 100 == 0 else "log"
            loss = 2.5 * math.exp(-3 * step / events) + 0.4
            event = {"type": kind, "time": t0 + step, "step": step, "epoch": step / events * 3}
            event.update({"eval_loss": loss + 0.1} if kind == "eval" else
                         {"loss": loss, "learning_rate": 1e-4, "grad_norm": 1.0, "total_steps": events,
                          "tokens_per_s": 5000.0, "elapsed_s": step, "eta_s": events - step})
            out.write(json.dumps(event) + "\n")
        out.write(json.dumps({"type": "run_finished", "time": t0 + events, "step": events,
                              "elapsed_s": float(events)}) + "\n")
    run.update_status(state="finished", preset="bench", started=t0, ended=t0 + events)
    return run.path


def measure(run_path: Path, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(run_path), str(ROOT)], capture_output=True, text=True,
                         env=env, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, TUNEDECK_CONFIG_DIR=f"{tmp}/config", TUNEDECK_STATE_DIR=f"{tmp}/state",
                   TUNEDECK_CACHE_DIR=f"{tmp}/cache", PYTHONPATH=str(ROOT))
        os.environ.update({k: env[k] for k in ("TUNEDECK_CONFIG_DIR", "TUNEDECK_STATE_DIR")})
        t = time.perf_counter()
        small = write_run(Path(tmp) / "runs", 10, 10)
        big = write_run(Path(tmp) / "runs", args.lines, args.events)
        size = (big / "output.log").stat().st_size + (big / "events.jsonl").stat().st_size
        print(f"wrote {args.lines:,} log lines + {args.events:,} events ({size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - t:.1f} s")
        base = measure(small, env)
        result = measure(big, env)
    assert result["last_line"].endswith(f"line {args.lines - 1}: processing a batch of 16 sequences, loss n/a")
    print(f"baseline (10 lines, 10 events): first frame {base['first_frame_s']:.2f} s, "
          f"peak RSS {base['peak_rss'] / 2**20:.0f} MiB")
    print(f"large ({args.lines:,} lines, {args.events:,} events, {result['points']:,} loss points): "
          f"first frame (log at its end) {result['log_frame_s']:.2f} s, everything drawn (curves, diagnosis) "
          f"{result['first_frame_s']:.2f} s, peak RSS {result['peak_rss'] / 2**20:.0f} MiB")
    print(f"ratio large/baseline: time x{result['first_frame_s'] / base['first_frame_s']:.2f}, "
          f"RSS x{result['peak_rss'] / base['peak_rss']:.2f}")
    print(f"targets: first frame < 2 s -> {'met' if result['log_frame_s'] < 2 else 'MISSED'} "
          f"(everything drawn: {'met' if result['first_frame_s'] < 2 else 'MISSED'}); "
          f"peak RSS < 150 MB -> {'met' if result['peak_rss'] < 150e6 else 'MISSED'}")


if __name__ == "__main__":
    main()
