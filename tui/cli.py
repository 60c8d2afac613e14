"""The `tunedeck` console script: runner.cli's one command tree, plus the commands that open the TUI.

`edit`, `attach` and the live screen of `runs` are sub-commands of the same argparse tree (so
`tunedeck --help` lists them) and go through the same error handler and exit codes (runner/exits.py).
They are registered here because runner must never import tui; the Textual app is imported only
inside them, so every other command starts fast. `tunedeck` alone skips argparse altogether and
paints the editor on the demo preset first.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

DEFAULT_PRESET = "demo"
# Set (to anything but "" or "0") to make `tunedeck runs` open the live screen even when stdin/stdout
# are pipes, as under a web terminal; `runs --screen` does the same for one call.
RUNS_SCREEN_ENV = "TUNEDECK_RUNS_SCREEN"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:  # the shipped demo: the TUI paints first and loads it right after (fast first frame)
        from tui.app import run_editor

        return run_editor(source=DEFAULT_PRESET, any_draft=True)
    from runner import cli as runner_cli  # only when a command is given: the editor needs no argparse tree

    return runner_cli.main(args, extra=(register,))


def register(sub: Any) -> None:
    """Add the TUI commands to runner.cli's tree (`sub` is its subparsers action)."""
    p = sub.add_parser("edit", help="open a preset in the editor (default: the demo)",
                       description="Open a preset in the editor. The file is read and checked first, so a "
                       "broken one is reported here (file, line, key) with exit code 2.")
    p.add_argument("file", nargs="?", default=DEFAULT_PRESET,
                   help="a preset name (user or shipped) or a path to a .toml file (default: demo)")
    p.set_defaults(func=cmd_edit)

    p = sub.add_parser("attach", help="open a run's live monitor (re-attach to a running run, or review one)",
                       description="Open a run's live monitor: re-attach to a running run, or review a finished one.")
    p.add_argument("run", metavar="RUN", nargs="?", default="latest",
                   help="a run directory, run name, unique prefix or 'latest' (default)")
    p.add_argument("--runs-dir", metavar="DIR", help="only the runs in DIR (default: every known run, wherever it was created)")
    p.set_defaults(func=cmd_attach)

    runs = sub.choices["runs"]  # runner's table; in a terminal the live screen instead
    runs.description = ("Every run with its state, progress and loss: the live runs screen in a terminal; the "
                        "table when --json is given or stdin/stdout are not a terminal.")
    runs.add_argument("--screen", action="store_true",
                      help=f"open the live runs screen even without a terminal (as ${RUNS_SCREEN_ENV}=1 does)")
    runs.set_defaults(func=cmd_runs, table=runs.get_default("func"))


def cmd_edit(args: argparse.Namespace) -> int:
    """Open `args.file` in the editor; a file that cannot be read is reported here, before the TUI starts."""
    from runner import exits, presets

    loaded = presets.load(args.file)
    if loaded.config is None:  # unreadable: say exactly why, no traceback, non-zero exit
        for problem in loaded.problems:
            print(problem.format(), file=sys.stderr)
        return exits.USAGE
    from tui.app import run_editor, state_from

    return run_editor(state_from(loaded), any_draft=False)


def cmd_attach(args: argparse.Namespace) -> int:
    return open_runs(args.runs_dir, args.run)


# What tunedeck-serve sets for every command it starts (its pipes lead to a browser terminal): the same
# as RUNS_SCREEN_ENV.
SCREEN_ENV = "TUNEDECK_SCREEN"


def cmd_runs(args: argparse.Namespace) -> int:
    wants_screen = args.screen or any(os.environ.get(name, "") not in ("", "0")
                                      for name in (RUNS_SCREEN_ENV, SCREEN_ENV))
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if args.json or not (wants_screen or interactive):
        return args.table(args)
    return open_runs(args.runs_dir)


def open_runs(runs_dir: str | None, attach: str | None = None) -> int:
    """The TUI on the runs screen, or straight in RUN's monitor; the editor sits underneath."""
    from runner import exits
    from runner.printable import printable

    run = None
    if attach is not None:
        from runner.run_ops import resolve

        run, why = resolve(attach, runs_dir)
        if run is None:
            print(f"error: {printable(why, 400)}", file=sys.stderr)
            return exits.USAGE
    from tui.app import TunedeckApp

    # The editor underneath loads the demo preset only when the user goes back to it.
    TunedeckApp(source=DEFAULT_PRESET, runs_dir=runs_dir, open_runs=True, attach=run).run()
    return exits.OK


if __name__ == "__main__":
    sys.exit(main())
