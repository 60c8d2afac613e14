"""The `tunedeck` console script: the editor and monitor commands open the TUI, the rest go to runner.cli.

Kept in tui/ because runner must never import tui; runner.cli stays usable without a terminal UI.
"""

from __future__ import annotations

import sys
from typing import Sequence

from runner import cli as runner_cli


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    return runner_cli.main(args)


if __name__ == "__main__":
    sys.exit(main())
