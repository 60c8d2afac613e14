"""Config commands: validate, show, explain, presets, schema. Fast: no torch, no network."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from runner import derived, exits, presets
from runner.printable import printable
from runner.problems import Problem
from runner.schema import FIELDS, FIELDS_BY_KEY, SECTIONS, Config, applies, get_value, help_text, json_schema


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check preset files; lists every problem, exit 1 on errors")
    p.add_argument("files", nargs="+", metavar="FILE", help="preset files or names")
    p.add_argument("--here", action="store_true", help="also check against this machine's GPUs (CUDA, GPU count)")
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("show", help="the resolved config with derived values and what differs from defaults")
    p.add_argument("file", metavar="FILE", help="preset file or name")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a value (repeatable)")
    p.add_argument("--changed", action="store_true", help="only the values that differ from the defaults")
    p.add_argument("--all", action="store_true",
                   help="also the fields that do not apply to this config (e.g. architecture unless from_scratch)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("explain", help="what a field (or every field of a section) does and how to set it")
    p.add_argument("key", metavar="SECTION[.KEY]", help="e.g. training.learning_rate or lora")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("presets", help="list shipped and user presets")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("schema", help="print the JSON Schema of the preset format (for TOML language servers)")
    p.add_argument("-o", "--output", metavar="FILE", help="write it to FILE instead of stdout")
    p.set_defaults(func=cmd_schema)


def print_problems(problems: list[Problem], stream: Any = None) -> None:
    for problem in problems:
        print(problem.format(), file=stream or sys.stderr)  # looked up now: tests and pipes swap sys.stderr


def cmd_validate(args: argparse.Namespace) -> int:
    from runner.validate import machine_context

    context = machine_context() if args.here else None
    failed = False
    for source in args.files:
        loaded = presets.load(source, context=context)
        print_problems(loaded.problems)
        data_ok = True
        if args.here and loaded.config is not None:  # the data files, as this machine sees them
            from runner.data_check import print_check

            data_ok = print_check(loaded.config)
        bad = bool(loaded.errors) or (args.strict and bool(loaded.warnings)) or not data_ok
        failed |= bad
        where = printable(loaded.path or source, 240)
        summary = f"{len(loaded.errors)} error(s), {len(loaded.warnings)} warning(s)"
        print(f"{where}: {'FAILED' if bad else 'ok'} ({summary})")
    return exits.FAILED if failed else exits.OK


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return printable(json.dumps(value, ensure_ascii=False), 200)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def cmd_show(args: argparse.Namespace) -> int:
    loaded = presets.load(args.file, args.overrides)
    if loaded.config is None or loaded.errors:
        print_problems(loaded.problems)
        return exits.USAGE
    config = loaded.config
    defaults = Config()
    base_dir = loaded.path.parent if loaded.path else None
    numbers = derived.derive(config, derived.count_examples(config, base_dir))
    changed = {spec.key for spec, _, _ in presets.differences(config, defaults)}
    if args.json:
        payload = {
            "file": str(loaded.path),
            "config": config.model_dump(mode="json"),
            "changed_from_defaults": sorted(changed),
            "not_applicable": [spec.key for spec in FIELDS if not applies(spec, config)],
            "derived": numbers.__dict__,
            "problems": [p.format() for p in loaded.problems],
        }
        print(json.dumps(payload, indent=2))
        return 0
    print(f"# {printable(loaded.path, 240)}")
    if config.description:
        print(f"# {printable(config.description, 200)}")
    width = max(len(spec.name) for spec in FIELDS)
    hidden: dict[str, list[str]] = {}  # condition -> fields left out because it does not hold
    for section in SECTIONS:
        rows = [s for s in FIELDS if s.section == section and (not args.changed or s.key in changed)]
        if not args.all:
            for spec in rows:
                if not applies(spec, config):
                    hidden.setdefault(spec.applies or "", []).append(spec.key)
            rows = [s for s in rows if args.all or applies(s, config)]
        if not rows:
            continue
        print(f"\n[{section}]")
        for spec in rows:
            value = get_value(config, spec.key)
            mark = f"  # default {_fmt(get_value(defaults, spec.key))}" if spec.key in changed else ""
            print(f"{spec.name:<{width}} = {_fmt(value)}{mark}")
    if hidden:  # which rule left each out comes from the schema (each field's `applies`), never from a list here
        print(f"\n# not shown: {sum(map(len, hidden.values()))} field(s) that do not apply to this config "
              "(--all shows them):")
    for condition, keys in hidden.items():
        print(f"#   {len(keys)} that apply only when {help_text.condition_text(condition)}: "
              f"{', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''}")
    print("\n[derived]")
    for line in describe_derived(numbers):
        print(line)
    if loaded.warnings:
        print()
        print_problems(loaded.warnings, sys.stdout)
    return 0


def describe_derived(d: derived.Derived) -> list[str]:
    unknown = "unknown until the dataset can be counted"
    lines = [
        f"effective batch size = {d.effective_batch_size}  (per-device batch x accumulation x {d.world_size} process(es))",
        f"tokens per step      <= {d.tokens_per_step:,}",
        f"training examples    = {d.num_examples if d.num_examples is not None else unknown}",
        f"steps per epoch      = {d.steps_per_epoch if d.steps_per_epoch is not None else unknown}",
        f"total steps          = {d.total_steps if d.total_steps is not None else unknown}",
    ]
    warmup = "unknown until total steps are known" if d.warmup_steps is None else str(d.warmup_steps)
    lines.append(f"warmup steps         = {warmup}" + ("  (ratio of total steps)" if d.warmup_is_ratio else ""))
    return lines


def cmd_explain(args: argparse.Namespace) -> int:
    key = args.key
    if key in SECTIONS:
        specs = [s for s in FIELDS if s.section == key]
    elif key in FIELDS_BY_KEY:
        specs = [FIELDS_BY_KEY[key]]
    else:
        matches = [s for s in FIELDS if s.name == key]
        if not matches:
            from runner.problems import did_you_mean

            guess = did_you_mean(key, [*FIELDS_BY_KEY, *SECTIONS, *(s.name for s in FIELDS)])
            hint = f"; did you mean '{guess}'?" if guess else ""
            print(f"error: no field or section named '{printable(key)}'{hint}", file=sys.stderr)
            return 1
        specs = matches
    for spec in specs:
        print("\n".join(help_text.terminal_lines(spec)), end="\n\n")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    found = presets.list_presets()
    if not found:
        print("no presets found")
        return 0
    width = max(len(p.name) for p in found)
    for info in found:
        print(f"{printable(info.name):<{width}}  {info.origin:<7}  {printable(info.description, 200)}")
    print(f"\nuser presets: {presets.preset_dirs()[0][1]}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    text = json.dumps(json_schema(), indent=2)
    if args.output:
        from runner.atomic import atomic_write_text

        atomic_write_text(Path(args.output), text + "\n")
        print(f"wrote {args.output}")
    else:
        print(text)
    return 0
