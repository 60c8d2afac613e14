"""`tunedeck import`: other tools' configs in, a validated tunedeck preset out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from runner.convert import FORMATS

    p = sub.add_parser("import", help="convert an Axolotl / LLaMA-Factory / TrainingArguments / torchtune config to a preset")
    p.add_argument("file", metavar="FILE", help="the config to convert (.yaml/.yml/.json)")
    p.add_argument("-o", "--output", metavar="PRESET", required=True, help="where to write the tunedeck preset (.toml)")
    p.add_argument("--format", choices=sorted(FORMATS), help="the source tool (detected from the keys when left out)")
    p.set_defaults(func=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    from runner import presets
    from runner.convert import import_file, write_preset
    from runner.printable import printable

    source, output = Path(args.file), Path(args.output)
    imported = import_file(source, args.format)
    write_preset(imported, source, output)
    mapped = sum(len(v) for v in imported.raw.values())
    print(f"{printable(source, 240)} ({imported.source_format}) -> {printable(output, 240)}: {mapped} setting(s) imported, "
          f"{len(imported.unmapped)} not imported")
    for note in imported.notes:
        print(f"  note: {printable(note, 400)}")
    for item in imported.unmapped:
        print(f"  not imported: {printable(item.key)} -- {printable(item.reason, 400)}")
    loaded = presets.load(output)
    for problem in loaded.problems:
        print(problem.format(), file=sys.stderr)
    if not loaded.ok:
        print(f"{printable(output, 240)}: the imported preset needs fixes before it can run (see above)", file=sys.stderr)
        return 1
    return 0
