"""What the model trains on, token by token: `python -m runner.data_preview PRESET [--n 5] [--json]`.

Loads the data exactly as training does (runner.train_data.prepare: the same loading, rendering,
chat template, truncation, masking and packing) with the run's tokenizer, then reports:

- counts: rows read, kept, dropped and why, truncated, the eval split, packed rows;
- token lengths (before truncation) against max_seq_length: a histogram and percentiles;
- N rendered examples, token by token, each token marked trained (counts toward the loss) or masked;
- the share of rows with zero trainable tokens, an error with its cause when above 0.

`tunedeck data` prints it; the TUI's Data screen runs this module in a subprocess (`--json`) so the
UI process never imports transformers or datasets. Exit status: 0 fine, 1 data errors (bad rows,
zero-trainable rows, nothing left), 2 the preset itself has errors.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any

from runner.exits import FAILED as EXIT_DATA, OK as EXIT_OK, USAGE as EXIT_CONFIG

HISTOGRAM_BINS = 8  # bins up to max_seq_length, plus one for longer rows
PERCENTILES = (50, 90, 95, 99)


def load_tokenizer(config):
    """The run's tokenizer, loaded as the trainer loads it; the built-in demo tokenizer without building
    the demo model (which needs torch) when it is not cached yet."""
    from runner.demo_spec import DEMO_MODEL

    m = config.model
    if (m.tokenizer_name_or_path or m.name_or_path) == DEMO_MODEL:
        from runner.demo_spec import demo_model_cache

        if not (demo_model_cache() / "tokenizer.json").is_file():
            from runner.train_demo import build_tokenizer  # the same builder the demo model's cache uses

            tokenizer = build_tokenizer()
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            return tokenizer
    from runner.train_model import load_tokenizer as trainer_tokenizer

    return trainer_tokenizer(config)


def percentile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def histogram(lengths: list[int], max_len: int) -> list[dict[str, Any]]:
    """Counts per length bin: HISTOGRAM_BINS equal bins up to max_seq_length, then one for longer rows."""
    width = max(1, math.ceil(max_len / HISTOGRAM_BINS))
    bins = [{"lo": i * width + 1, "hi": min((i + 1) * width, max_len), "count": 0} for i in range(HISTOGRAM_BINS)]
    bins = [b for b in bins if b["lo"] <= max_len]
    over = {"lo": max_len + 1, "hi": max(lengths, default=max_len + 1), "count": 0, "over": True}
    for n in lengths:
        if n > max_len:
            over["count"] += 1
        else:
            bins[min(max(n - 1, 0) // width, len(bins) - 1)]["count"] += 1
    return bins + [over]


def tokens_of(tokenizer, ids: list[int], labels: list[int]) -> list[dict[str, Any]]:
    pieces = []
    for token, label in zip(ids, labels):
        pieces.append({"id": int(token), "text": tokenizer.decode([token]), "trained": label != -100})
    return pieces


def preview(config, tokenizer, n: int = 5) -> dict[str, Any]:
    """The whole report as plain data (what `--json` prints)."""
    from runner import train_data
    from runner.data_check import sources

    d = config.data
    t0 = time.perf_counter()
    prepared = train_data.prepare(config, tokenizer, keep_rows=True)
    report = prepared.report
    rows = report.tokenized
    lengths_all, statuses, causes, all_ids, all_labels = train_data.columns(
        rows, "length", "status", "cause", "input_ids", "labels")
    measured = sorted(n_ for n_, s in zip(lengths_all, statuses) if s != "empty")
    dropped: dict[str, int] = {}
    no_trainable_causes: dict[str, int] = {}
    for s, cause in zip(statuses, causes):
        if s in train_data.DROP_REASONS:
            dropped[s] = dropped.get(s, 0) + 1
            if s == "no_trainable":
                no_trainable_causes[cause] = no_trainable_causes.get(cause, 0) + 1
    zero = dropped.get("no_trainable", 0)
    read = len(statuses)
    trained_tokens = 0
    total_tokens = 0
    for ids, labels, s in zip(all_ids, all_labels, statuses):
        if s not in train_data.DROP_REASONS:
            total_tokens += len(ids)
            trained_tokens += sum(1 for x in labels[1:] if x != -100)
    picks = list(range(min(n, read)))
    first_zero = next((i for i, s in enumerate(statuses) if s == "no_trainable"), None)
    if first_zero is not None and first_zero not in picks:
        picks.append(first_zero)  # show one row with nothing to learn, so its cause is visible
    examples = []
    for i in picks:
        row = rows[i]
        examples.append({"index": i, "source": row["source"], "status": row["status"], "cause": row["cause"],
                         "length": row["length"], "tokens": tokens_of(tokenizer, row["input_ids"], row["labels"])})
    errors = []
    if zero:
        why = "; ".join(f"{c} ({k} rows)" for c, k in no_trainable_causes.items())
        errors.append(f"{zero} of {read} rows ({zero / max(read, 1):.1%}) have zero trainable tokens: {why}")
    return {
        "format": d.format,
        "formats": sorted({s.data.format for s in sources(config)}),
        "max_seq_length": d.max_seq_length,
        "truncation": d.truncation,
        "packing": d.packing,
        "completion_only_loss": d.completion_only_loss,
        "template": report.template,
        "tokenizer": config.model.tokenizer_name_or_path or config.model.name_or_path,
        "sources": [vars(s) for s in report.sources],
        "totals": {
            "read": read, "kept": report.kept, "dropped": dropped,
            "truncated": sum(1 for s in statuses if s == "truncated"),
            "train": prepared.num_train_examples, "eval": prepared.num_eval_examples,
            "eval_source": report.eval_source,
            "packed_rows": len(prepared.train) if prepared.packed else None,
            "tokens": total_tokens, "trained_tokens": trained_tokens,
        },
        "lengths": {
            "count": len(measured), "min": measured[0] if measured else 0, "max": measured[-1] if measured else 0,
            "mean": round(sum(measured) / len(measured), 1) if measured else 0,
            **{f"p{q}": percentile(measured, q) for q in PERCENTILES},
            "over_max": sum(1 for x in measured if x > d.max_seq_length),
        },
        "histogram": histogram(measured, d.max_seq_length),
        "zero_trainable": {"rows": zero, "share": zero / max(read, 1), "causes": no_trainable_causes},
        "examples": examples,
        "warnings": prepared.warnings,
        "errors": errors,
        "seconds": round(time.perf_counter() - t0, 3),
    }


# --- text output ----------------------------------------------------------------------------------------
TRAINED_OPEN, TRAINED_CLOSE = "\u27e6", "\u27e7"  # ⟦trained⟧ in plain text; colour on a terminal


def visible(text: str) -> str:
    """Token text with whitespace and control characters shown, never printed raw."""
    out = []
    for ch in text:
        if ch == "\n":
            out.append("\u21b5\n")
        elif ch == "\t":
            out.append("\u2192")
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        else:
            out.append(repr(ch)[1:-1])
    return "".join(out)


def render_tokens(tokens: list[dict[str, Any]], *, color: bool, ids: bool) -> str:
    parts = []
    open_run = False
    for tok in tokens:
        text = visible(tok["text"])
        if ids:  # the id right after the token, before any line break it ends with
            text = text.rstrip("\n") + f"\u2039{tok['id']}\u203a" + "\n" * (len(text) - len(text.rstrip("\n")))
        if color:
            parts.append(f"\x1b[1;32;4m{text}\x1b[0m" if tok["trained"] else f"\x1b[2m{text}\x1b[0m")
            continue
        if tok["trained"] and not open_run:
            parts.append(TRAINED_OPEN)
            open_run = True
        elif not tok["trained"] and open_run:
            parts.append(TRAINED_CLOSE)
            open_run = False
        parts.append(text)
    if open_run:
        parts.append(TRAINED_CLOSE)
    return "".join(parts)


def format_report(r: dict[str, Any], *, color: bool = False, ids: bool = False) -> str:
    from runner.printable import printable

    def safe(text: Any) -> str:  # paths, names and messages from the preset or the data: never raw
        return printable(str(text), 400)

    tot, ln = r["totals"], r["lengths"]
    lines = [f"format {', '.join(r['formats'])}; tokenizer {safe(r['tokenizer'])}"
             + (f"; chat template: {safe(r['template'])}" if r["template"] else "")
             + f"; max_seq_length {r['max_seq_length']} ({'truncate' if r['truncation'] else 'drop longer rows'})"]
    for s in r["sources"]:
        drops = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in s["dropped"].items()) or "none"
        weight = f", used {s['used']} after weight" if s["used"] != s["kept"] else ""
        lines.append(f"  {s['label']} {safe(s['path'])}: read {s['read']}, kept {s['kept']}, dropped {drops}, "
                     f"truncated {s['truncated']}{weight}")
    eval_part = f", eval {tot['eval']} ({tot['eval_source']})" if tot["eval_source"] else ", no eval set"
    packed = f", packed into {tot['packed_rows']} rows" if tot["packed_rows"] is not None else ""
    share = tot["trained_tokens"] / max(tot["tokens"], 1)
    lines.append(f"rows: read {tot['read']}, kept {tot['kept']}, truncated {tot['truncated']}; train {tot['train']}"
                 f"{eval_part}{packed}; {tot['tokens']:,} tokens, {share:.0%} trained")
    lines.append("")
    lines.append(f"token lengths (before truncation): min {ln['min']}, mean {ln['mean']}, p50 {ln['p50']}, "
                 f"p90 {ln['p90']}, p95 {ln['p95']}, p99 {ln['p99']}, max {ln['max']}; "
                 f"{ln['over_max']} longer than max_seq_length {r['max_seq_length']}")
    peak = max((b["count"] for b in r["histogram"]), default=0) or 1
    for b in r["histogram"]:
        label = f"> {r['max_seq_length']}" if b.get("over") else f"{b['lo']}-{b['hi']}"
        bar = "\u2588" * round(30 * b["count"] / peak)
        lines.append(f"  {label:>13} {bar:<30} {b['count']}")
    lines.append("")
    legend = ("trained tokens green and underlined, masked tokens dim" if color else
              f"{TRAINED_OPEN}trained{TRAINED_CLOSE} tokens count toward the loss; the rest is masked")
    lines.append(f"examples ({legend}; \u21b5 = newline):")
    for ex in r["examples"]:
        note = f" [{ex['status'].replace('_', ' ')}: {ex['cause']}]" if ex["cause"] else ""
        lines.append(f"--- row {ex['index'] + 1} ({ex['source']}), {ex['length']} tokens{note}")
        lines.append(render_tokens(ex["tokens"], color=color, ids=ids))
    for w in r["warnings"]:
        lines.append(f"warning: {safe(w)}")
    for e in r["errors"]:
        lines.append(f"error: {safe(e)}")
    return "\n".join(lines)


# --- entry point ----------------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="PRESET_OR_FILE")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a value (repeatable)")
    p.add_argument("--n", type=int, default=5, metavar="N", help="rendered examples to show (default 5)")
    p.add_argument("--ids", action="store_true", help="show each token's id")
    p.add_argument("--json", action="store_true", help="machine-readable output (what the TUI reads)")


def run(args: argparse.Namespace) -> int:
    """Shared by `tunedeck data` and `python -m runner.data_preview`."""
    from runner import data_check, presets
    from runner.diagnose import DataError, RunError

    loaded = presets.load(args.source, args.overrides)
    if loaded.config is None or loaded.errors:
        return _fail(args, [p.format() for p in loaded.errors or loaded.problems], EXIT_CONFIG,
                     f"not previewing {args.source}: fix the error(s) above")
    config = loaded.config
    problems = data_check.check(config)
    if problems:
        return _fail(args, [p.format() for p in problems], EXIT_DATA, "fix the data error(s) above")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    try:
        tokenizer = load_tokenizer(config)
        result = preview(config, tokenizer, max(0, args.n))
    except RunError as exc:  # DataError, ModelNotFound: one clear line
        code = EXIT_DATA if isinstance(exc, DataError) else EXIT_CONFIG
        return _fail(args, [f"error: {exc}"], code, "")
    result["preset"] = loaded.name
    from runner.data_lengths import record

    record(config, result["lengths"])  # the memory estimate can now use the real longest row
    if args.json:
        print(json.dumps(result))
    else:
        print(format_report(result, color=sys.stdout.isatty(), ids=args.ids))
    return EXIT_DATA if result["errors"] else EXIT_OK


def _fail(args, lines: list[str], code: int, summary: str) -> int:
    if args.json:
        print(json.dumps({"errors": lines, "exit": code}))
    else:
        from runner.printable import printable

        for line in lines:
            print(printable(line, 2000), file=sys.stderr)
        if summary:
            print(f"error: {summary}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner.data_preview", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
