"""`tunedeck` command line. Sub-commands live in runner/commands/, one module each.

Start-up must stay fast: no torch/transformers import here or in any command module
at import time (the training process is a separate `accelerate launch`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from runner import __version__

# Each module defines `register(subparsers)`, adding parsers whose `func(args) -> int` runs them.
COMMAND_MODULES = (
    "runner.commands.config_cmds",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tunedeck",
        description="Configure, estimate, launch and watch LLM fine-tuning runs. "
        "With no command, opens the editor.",
    )
    parser.add_argument("--version", action="version", version=f"tunedeck {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
