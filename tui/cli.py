"""The `tunedeck` console script: no arguments or `edit [FILE]` open the editor; the rest go to runner.cli.

Kept in tui/ because runner must never import tui; runner.cli stays usable without a terminal UI.
The Textual app is imported only when the editor opens, so CLI commands start fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from runner import cli as runner_cli

DEFAULT_PRESET = "demo"


def edit_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tunedeck edit", description="Open a preset in the editor.")
    parser.add_argument("file", nargs="?", default=DEFAULT_PRESET,
                        help="a preset name (user or shipped) or a path to a .toml file (default: demo)")
    return parser


def edit(source: str, any_draft: bool = False) -> int:
    from runner import presets

    loaded = presets.load(source)
    if loaded.config is None:  # unreadable: say exactly why, no traceback, non-zero exit
        for problem in loaded.problems:
            print(problem.format(), file=sys.stderr)
        return 2
    from tui.app import run_editor, state_from

    return run_editor(state_from(loaded), any_draft=any_draft)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        return edit(DEFAULT_PRESET, any_draft=True)
    if args[0] == "edit":
        options = edit_parser().parse_args(args[1:])
        return edit(options.file)
    return runner_cli.main(args)


if __name__ == "__main__":
    sys.exit(main())
