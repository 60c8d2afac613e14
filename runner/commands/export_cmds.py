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
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                   help="launch flags for GPUs or the CPU (default: what this machine has; sbatch and script "
                        "decide on the cluster)")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from runner import presets
    from runner.printable import printable
    from runner.atomic import atomic_write_text
    from runner.export import export_text

    loaded = presets.require(args.file, args.overrides)
    for problem in loaded.problems:  # warnings only: require() raised on errors
        print(problem.format(), file=sys.stderr)
    if args.device == "auto":
        from runner.launch import detect_cuda

        cuda = detect_cuda()[0]
    else:
        cuda = args.device == "cuda"
    text = export_text(loaded.config, args.fmt, name=loaded.name, cuda=cuda)
    if not args.output:
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    atomic_write_text(out, text)
    if args.fmt in ("script", "sbatch", "accelerate-cmd"):
        out.chmod(out.stat().st_mode | 0o111)  # runnable as ./OUT
    print(f"{printable(loaded.name)} -> {printable(out, 240)} ({args.fmt})", file=sys.stderr)
    return 0
