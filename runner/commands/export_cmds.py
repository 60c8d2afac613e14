"""`tunedeck export`: a preset as an accelerate command/config, TrainingArguments JSON, a standalone
script or a SLURM sbatch script."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from runner.export import DESCRIPTIONS, FORMATS

    p = sub.add_parser("export", help="write a preset as an accelerate command/config, TrainingArguments JSON, "
                                      "a standalone script or an sbatch script",
                       description="Formats: " + "; ".join(f"{f}: {DESCRIPTIONS[f]}" for f in FORMATS)
                       + ". `tunedeck import` reads every one back.")
    p.add_argument("file", metavar="PRESET", help="a preset name or .toml path")
    p.add_argument("--to", dest="fmt", choices=FORMATS, required=True, help="the export format")
    p.add_argument("-o", "--output", metavar="OUT", help="write here (default: standard output)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a setting before exporting (repeatable)")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default=None,
                   help="the target hardware, overriding the preset's launch.device (default: the preset's; "
                        "'auto' there means CUDA when it has GPU settings, never this machine's hardware)")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from runner import presets
    from runner.printable import printable
    from runner.atomic import atomic_write_text
    from runner.export import export_text

    loaded = presets.require(args.file, args.overrides)
    for problem in loaded.problems:  # warnings only: require() raised on errors
        print(problem.format(), file=sys.stderr)
    from runner.problems import ConfigError

    try:
        text = export_text(loaded.config, args.fmt, name=loaded.name, device=args.device)
    except ConfigError as exc:  # e.g. a multi-node accelerate command without the main node's address
        for problem in exc.problems:
            print(problem.format(), file=sys.stderr)
        return 1
    if not args.output:
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    atomic_write_text(out, text)
    if args.fmt in ("script", "sbatch", "accelerate-cmd"):
        out.chmod(out.stat().st_mode | 0o111)  # runnable as ./OUT
    print(f"{printable(loaded.name)} -> {printable(out, 240)} ({args.fmt})", file=sys.stderr)
    return 0
