"""Browser mode: serve the tunedeck TUI as a web page with textual-serve.

    tunedeck-serve [--host 127.0.0.1] [--port 8000] [TUNEDECK ARGS...]
    python -m tui.serve --port 8000 runs          # the runs screen instead of the editor

Each browser tab gets its own tunedeck process, started with the arguments given here. Bind to
127.0.0.1 (the default) and forward the port over SSH, or put an authenticating proxy in front:
textual-serve itself has no login. Needs the optional extra: pip install 'tunedeck[serve]'.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tunedeck-serve", description="Serve tunedeck in a browser tab.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, local only)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    parser.add_argument("--public-url", help="the URL browsers use, when behind a proxy")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for tunedeck (default: open the editor)")
    options = parser.parse_args(argv)
    try:
        from textual_serve.server import Server
    except ImportError:
        print("tunedeck-serve needs textual-serve: pip install 'tunedeck[serve]'", file=sys.stderr)
        return 1
    # textual-serve runs this string through a shell for each tab: every part is quoted.
    command = shlex.join([sys.executable, "-m", "tui.cli", *options.args])
    Server(command, host=options.host, port=options.port, title="tunedeck", public_url=options.public_url).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
