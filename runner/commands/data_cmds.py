"""`tunedeck data PRESET`: what the model will train on, token by token (runner.data_preview)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="preview the training data as training sees it: counts, token lengths, "
                       "rendered examples with the trained tokens marked")
    from runner.data_preview import add_arguments

    add_arguments(p)
    p.set_defaults(func=cmd_data)


def cmd_data(args: argparse.Namespace) -> int:
    from runner.data_preview import run

    return run(args)
