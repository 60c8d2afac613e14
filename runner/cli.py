"""`tunedeck` command line: ONE argparse tree and ONE error handler for every command.

Sub-commands live in runner/commands/, one module each, listed in COMMAND_MODULES. The commands that
open the terminal UI (`edit`, `attach`, and the live screen of `runs`) are added to the same tree by
tui/cli.py through `main(argv, extra=...)`, because runner never imports tui.

Start-up must stay fast: no torch/transformers import here or in any command module at import time
(the training process is a separate `accelerate launch`).

Exit codes: runner/exits.py (and README's table).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any, Callable, Sequence

from runner import __version__, exits
from runner.printable import printable, safe_lines
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
Register = Callable[[Any], None]  # adds sub-commands to the tree (argparse's subparsers action)


class Parser(argparse.ArgumentParser):
    """argparse, with what it echoes from the command line (a bad value, an unknown option) escaped."""

    def _print_message(self, message: str, file: Any = None) -> None:
        super()._print_message(safe_lines(message) if message else message, file)


def build_parser(extra: Sequence[Register] = ()) -> argparse.ArgumentParser:
    parser = Parser(
        prog="tunedeck",
        description="Configure, estimate, launch and watch LLM fine-tuning runs. "
        "With no command, opens the editor on the demo preset.",
        epilog="Exit codes: " + "; ".join(f"{code} {what}" for code, what in exits.TABLE) + ".",
    )
    parser.add_argument("--version", action="version", version=f"tunedeck {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    for register in extra:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None, extra: Sequence[Register] = ()) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(extra)
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # --help, --version (0) or a bad command line (2), already explained
        return exc.code if isinstance(exc.code, int) else exits.USAGE
    if not getattr(args, "func", None):
        parser.print_help()
        return exits.OK
    return run_command(args.func, args, args_list)


def run_command(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace,
                argv: Sequence[str] = ()) -> int:
    """Run one command; every way it can end becomes one message on stderr and a documented exit code."""
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return exits.INTERRUPTED
    except ConfigError as exc:  # a command refused a config: every problem, no traceback
        print(exc, file=sys.stderr)
        return exits.USAGE
    except BrokenPipeError:  # output piped into `head` and the like
        try:
            sys.stderr.close()
        except OSError:
            pass
        return exits.OK
    except OSError as exc:
        from runner.rundir import disk_full_message, is_disk_full

        if is_disk_full(exc):  # e.g. `export -o FILE` on a full disk: where, and how much is left
            where = exc.filename or os.getcwd()
            print(f"tunedeck: error (disk_full): {printable(disk_full_message(where), 400)}; nothing was written",
                  file=sys.stderr)
            return exits.FAILED
        if exc.filename is None:
            return _bug(exc, argv)
        # The file system said no (a directory that cannot be written, a full disk): the user can act on it.
        print(f"tunedeck: error: {printable(exc.filename, 240)}: {printable(exc.strerror or exc, 240)}",
              file=sys.stderr)
        return exits.USAGE
    except Exception as exc:  # noqa: BLE001 - a bug, not bad input
        return _bug(exc, argv)


def _bug(exc: Exception, argv: Sequence[str]) -> int:
    if os.environ.get("TUNEDECK_DEBUG"):
        raise exc
    report = exits.write_bug_report(exc, list(argv))
    where = (f"the full traceback is in {printable(report, 240)}" if report is not None
             else "the traceback could not be saved; run again with TUNEDECK_DEBUG=1 to see it")
    print(f"tunedeck: unexpected failure, a bug in tunedeck rather than in your input "
          f"({type(exc).__name__}: {printable(exc, 200)}). {where}. Please report it with that file; "
          f"exit code {exits.BUG}.", file=sys.stderr)
    return exits.BUG


if __name__ == "__main__":
    sys.exit(main())
