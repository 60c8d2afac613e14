"""Time to first frame of `tunedeck` (the editor on the demo preset) vs a minimal "hello" Textual app.

Each app runs in a pseudo-terminal (120x40, xterm-256color) as a user would start it; the clock
stops when a marker text of its first screen appears in the terminal output. Both are measured in
the same run, alternating, and the medians compared. Target: ratio <= 1.5.

Also printed, for the whole picture: when the form is filled (the preset loaded and its first
fields painted, just after the first frame), and `tunedeck edit FILE`, which validates the file
before the TUI starts (so a broken file is reported on the terminal) and so pays the schema's
imports before its first frame.

    python benchmarks/startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import shutil
import signal
import statistics
import struct
import sys
import tempfile
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HELLO = """
from textual.app import App
from textual.widgets import Footer, Header, Static

class Hello(App):
    def compose(self):
        yield Header()
        yield Static("hello tunedeck")
        yield Footer()

Hello().run()
"""
TIMEOUT = 30.0


def time_to_marker(argv: list[str], marker: bytes, env: dict[str, str]) -> float:
    """Seconds from spawning `argv` in a pty until `marker` shows up in what it writes."""
    start = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:  # child: becomes the app
        os.execvpe(argv[0], argv, env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    seen = b""
    try:
        while time.perf_counter() - start < TIMEOUT:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen = seen[-len(marker):] + chunk  # keep a tail so a marker split across reads is found
            if marker in seen:
                return time.perf_counter() - start
        raise RuntimeError(f"{argv} did not show {marker!r} within {TIMEOUT}s")
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="tunedeck-bench-"))
    env = dict(os.environ, TERM="xterm-256color", COLORTERM="", TUNEDECK_STATE_DIR=str(state / "state"),
               TUNEDECK_CONFIG_DIR=str(state / "config"), PYTHONPATH=str(ROOT))
    tunedeck = [sys.executable, "-c", "import sys; from tui.cli import main; sys.exit(main([]))"]
    edit_file = [sys.executable, "-c", "import sys; from tui.cli import main; sys.exit(main(['edit', 'demo']))"]
    hello = [sys.executable, "-c", HELLO]
    # One untimed run each warms the OS file cache and Python's bytecode caches.
    time_to_marker(hello, b"hello tunedeck", env)
    time_to_marker(tunedeck, b"Batch & steps", env)
    times: dict[str, list[float]] = {"hello": [], "tunedeck": [], "tunedeck form": [], "edit FILE": []}
    for _ in range(args.runs):
        times["hello"].append(time_to_marker(hello, b"hello tunedeck", env))
        # First frame: the section list is painted. Form filled: the first group's fields are shown.
        times["tunedeck"].append(time_to_marker(tunedeck, b"Batch & steps", env))
        times["tunedeck form"].append(time_to_marker(tunedeck, b"Weight dtype", env))
        times["edit FILE"].append(time_to_marker(edit_file, b"Batch & steps", env))
    shutil.rmtree(state, ignore_errors=True)
    med = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"{name:13s} median {med[name] * 1000:7.1f} ms  (min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f}, "
              f"n={len(values)})")
    ratio = med["tunedeck"] / med["hello"]
    print(f"ratio tunedeck first frame / hello: {ratio:.2f}x (target <= 1.5x)")
    print(f"ratio tunedeck form filled / hello: {med['tunedeck form'] / med['hello']:.2f}x")
    print(f"ratio tunedeck edit FILE first frame / hello: {med['edit FILE'] / med['hello']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
