"""Exit codes of every `tunedeck` command (README's "Exit codes" table says the same), and the report
written when a bug, not the user's input, ends a command.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import traceback
from pathlib import Path

OK = 0
# The command did its job and the answer is "no": `validate` found errors (or warnings with --strict),
# `estimate` says it does not fit, a foreground run failed, `stop` left processes alive; or the disk filled up.
FAILED = 1
# The input was refused before anything was done: the command line (unknown option, bad value), a preset
# or a --set with errors (show, estimate, export, run, edit), a preset or run that does not exist, a file
# that cannot be read or written.
USAGE = 2
# A bug in tunedeck: a one-line message says where the full traceback was written.
BUG = 3
# Interrupted with Ctrl-C (a foreground run stopped gracefully also ends with it).
INTERRUPTED = 130

TABLE = (
    (OK, "success"),
    (FAILED, "the check failed: validate found errors, estimate does not fit, the run failed, stop left processes, "
             "the disk is full"),
    (USAGE, "input refused: bad command line, a preset or --set with errors, no such preset/run, unreadable file"),
    (BUG, "a bug in tunedeck; the message names the file holding the traceback"),
    (INTERRUPTED, "interrupted (Ctrl-C); a foreground run was stopped gracefully"),
)


def write_bug_report(exc: BaseException, argv: list[str]) -> Path | None:
    """Save the traceback of `exc` under the state directory; the path, or None when it cannot be written."""
    from runner.atomic import atomic_write_text
    from runner.paths import state_dir

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = state_dir() / "errors" / f"tunedeck-{stamp}-{os.getpid()}.txt"
    text = (f"tunedeck {_version()} failed unexpectedly\ncommand: tunedeck {' '.join(_redacted(argv))}\n\n"
            + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    try:
        atomic_write_text(path, text)
    except OSError:
        return None
    return path


def _redacted(argv: list[str]) -> list[str]:
    """The command line without the values of anything that looks like a secret (`--set x.token=...`)."""
    secret = re.compile(r"(?i)^([^=]*(token|key|password|secret|passwd)[^=]*=).*$")
    return [secret.sub(r"\1***", arg) for arg in argv]


def _version() -> str:
    from runner import __version__

    return __version__
