"""The `tunedeck` console script: no arguments or `edit [FILE]` open the editor; the rest go to runner.cli.

Kept in tui/ because runner must never import tui; runner.cli stays usable without a terminal UI.
The Textual app is imported only when the editor opens, so CLI commands start fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

DEFAULT_PRESET = "demo"


def edit_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tunedeck edit", description="Open a preset in the editor.")
    parser.add_argument("file", nargs="?", default=DEFAULT_PRESET,
                        help="a preset name (user or shipped) or a path to a .toml file (default: demo)")
    return parser


def edit(source: str, any_draft: bool = False) -> int:
    """Open `source` in the editor; a file that cannot be read is reported here, before the TUI starts."""
    from runner import presets

    loaded = presets.load(source)
    if loaded.config is None:  # unreadable: say exactly why, no traceback, non-zero exit
        for problem in loaded.problems:
            print(problem.format(), file=sys.stderr)
        return 2
    from tui.app import run_editor, state_from

    return run_editor(state_from(loaded), any_draft=any_draft)


def runs_parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"tunedeck {command}", description=(
        "Open a run's live monitor (re-attach to a running run, or review a finished one)." if command == "attach"
        else "Open the runs screen: every run with its state, progress and best eval loss."))
    if command == "attach":
        parser.add_argument("run", metavar="RUN", nargs="?", default="latest",
                            help="a run directory, run name, unique prefix or 'latest' (default)")
    parser.add_argument("--runs-dir", metavar="DIR", help="where runs live (default: $TUNEDECK_RUNS_DIR or ./runs)")
    return parser


def open_runs(runs_dir: str | None, attach: str | None = None) -> int:
    """The TUI on the runs screen, or straight in RUN's monitor; the editor sits underneath."""
    run = None
    if attach is not None:
        from runner.run_ops import resolve

        run, why = resolve(attach, runs_dir)
        if run is None:
            print(f"error: {why}", file=sys.stderr)
            return 2
    from tui.app import TunedeckApp

    # The editor underneath loads the demo preset only when the user goes back to it.
    TunedeckApp(source=DEFAULT_PRESET, runs_dir=runs_dir, open_runs=True, attach=run).run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:  # the shipped demo: the TUI paints first and loads it right after (fast first frame)
        from tui.app import run_editor

        return run_editor(source=DEFAULT_PRESET, any_draft=True)
    if args[0] == "edit":
        options = edit_parser().parse_args(args[1:])
        return edit(options.file)
    if args[0] == "attach":
        options = runs_parser("attach").parse_args(args[1:])
        return open_runs(options.runs_dir, options.run)
    if args[0] == "runs" and "--json" not in args and sys.stdin.isatty() and sys.stdout.isatty():
        options = runs_parser("runs").parse_args(args[1:])  # interactive: the live screen; piped: runner's table
        return open_runs(options.runs_dir)
    from runner import cli as runner_cli  # only when dispatching: the editor does not need argparse trees

    return runner_cli.main(args)


if __name__ == "__main__":
    sys.exit(main())
