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
    p.add_argument("--lenient", action="store_true",
                   help="import what tunedeck cannot train as meant (preference training, unknown datasets or models) "
                   "anyway; the preset says at its top what was changed")
    p.set_defaults(func=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    from runner import presets
    from runner import exits
    from runner.convert import Refused, import_file, write_preset
    from runner.printable import printable

    source, output = Path(args.file), Path(args.output)
    try:
        imported = import_file(source, args.format, lenient=args.lenient)
    except Refused as exc:  # read fine, but not trainable as meant: the check said no (1), not bad input (2)
        print(exc, file=sys.stderr)
        return exits.FAILED
    write_preset(imported, source, output)
    mapped = sum(len(v) for v in imported.raw.values())
    print(f"{printable(source, 240)} ({imported.source_format}) -> {printable(output, 240)}: {mapped} setting(s) imported, "
          f"{len(imported.unmapped)} not imported")
    if imported.why:
        print(f"  {len(imported.why)} value(s) derived or taken from the tool's defaults; each has a note beside it "
              f"in {output.name}")
    for item in imported.unsupported:
        print(f"  CHANGED (--lenient): {printable(item.key)}: {printable(item.why, 400)}; instead: "
              f"{printable(item.instead, 400)}")
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
