"""`tunedeck` command line. Sub-commands live in runner/commands/, one module each.

Start-up must stay fast: no torch/transformers import here or in any command module
at import time (the training process is a separate `accelerate launch`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from runner import __version__
from runner.problems import ConfigError

# Each module defines `register(subparsers)`, adding parsers whose `func(args) -> int` runs them.
COMMAND_MODULES = (
    "runner.commands.config_cmds",
    "runner.commands.convert_cmds",
    "runner.commands.data_cmds",
    "runner.commands.estimate_cmds",
    "runner.commands.export_cmds",
    "runner.commands.run_cmds",
    "runner.commands.try_cmds",
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
    except ConfigError as exc:  # a command refused a config: show every problem, no traceback
        print(exc, file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except Exception as exc:  # a bug, not bad input: say so briefly, full trace on request
        if os.environ.get("TUNEDECK_DEBUG"):
            raise
        print(f"tunedeck: internal error: {type(exc).__name__}: {exc} (set TUNEDECK_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
