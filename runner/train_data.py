"""Training data: load rows with `datasets`, render them (runner.prompts), tokenize, mask, pack.

Each example becomes `input_ids` and `labels`: the renderer splits a row into pieces that count
toward the loss and pieces that do not (the prompt, chat headers, turns of untrained roles); masked
pieces get label -100. Each piece is tokenized on its own, so a prompt is tokenized exactly as it is
at generation time. Rows that end up empty, too long (with truncation off) or with nothing to learn
are dropped and counted by reason (`DataReport`). Packing places several examples in one row of at
most max_seq_length tokens with position ids restarting per example, and the model keeps attention
inside each example (transformers derives the block-diagonal mask from the restarting position ids).
With flash_attention_2 a batch is flattened into one padding-free row; see PackedCollator.

The preview (`tunedeck data`, runner.data_preview) calls `prepare` too: what it shows is what trains.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field
from typing import Any

from runner import data_check
from runner.diagnose import DataError
from runner.problems import did_you_mean
from runner.prompts import (
    ChatTemplate, Rendered, RowError, TemplateError, render_row, resolve_chat_template,
)

IGNORE = -100  # label value the loss skips
LOCAL_SUFFIXES = data_check.LOCAL_SUFFIXES
# Why a row is dropped; "kept" and "truncated" rows train.
DROP_REASONS = {"empty": "empty (nothing to train on)", "too_long": "longer than max_seq_length (truncation off)",
                "no_trainable": "no trainable tokens"}


@dataclass
class SourceCounts:
    label: str
    path: str
    read: int = 0  # rows taken from the source (after max_samples)
    kept: int = 0  # after dropping, before weight
    used: int = 0  # after weight (repeats or a subset)
    truncated: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    no_trainable_causes: dict[str, int] = field(default_factory=dict)


@dataclass
class DataReport:
    """What happened to the rows on their way to training (the preview prints this)."""

    sources: list[SourceCounts] = field(default_factory=list)
    eval_rows: int = 0
    eval_source: str = ""  # "data.eval_path", "data.eval_split" or ""
    tokenized: Any = None  # datasets.Dataset of every row before filtering (input_ids, labels, length, status, ...)
    template: str = ""  # the chat template used, when any

    @property
    def read(self) -> int:
        return sum(s.read for s in self.sources)

    @property
    def kept(self) -> int:
        return sum(s.kept for s in self.sources)


@dataclass
class PreparedData:
    train: Any  # datasets.Dataset with input_ids, labels (and position_ids when packed)
    eval: Any | None
    num_train_examples: int
    num_eval_examples: int
    warnings: list[str] = field(default_factory=list)
    packed: bool = False
    report: DataReport = field(default_factory=DataReport)


# --- loading ------------------------------------------------------------------------------------
def load_rows(path: str, split: str, what: str = "data.path"):
    """A datasets.Dataset from a local file/dir, a Hub id, or the bundled demo."""
    import datasets

    datasets.disable_progress_bars()
    local = data_check.local_path(path)
    try:
        if local is not None:
            try:
                kind, files = data_check.data_files(local)
            except (ValueError, FileNotFoundError) as exc:
                raise DataError(f"{what}: {exc}") from None
            return datasets.load_dataset(kind, data_files=[str(p) for p in files], split="train")
        return datasets.load_dataset(path, split=split)  # a Hub dataset id
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - datasets raises many kinds; all mean "cannot read data"
        raise DataError(f"{what}: cannot load {path!r}: {type(exc).__name__}: {exc}") from exc


def check_before_loading(source: data_check.Source) -> None:
    """The fast row check on a local source: bad rows fail here with file and line, not deep in `datasets`."""
    if data_check.local_path(source.data.path) is None:
        return
    problems = data_check.check_source(source).problems
    if problems:
        shown = "; ".join(p.format() for p in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise DataError(shown + more)


def _require_columns(ds, needed: dict[str, str], data_format: str) -> None:
    for key, column in needed.items():
        if column not in ds.column_names:
            hint = did_you_mean(column, ds.column_names)
            raise DataError(
                f"missing column {column!r} ({key}) needed by data.format = {data_format!r}; the dataset has "
                f"columns {ds.column_names}" + (f"; did you mean {hint!r}?" if hint else "")
            )


# --- rendering and tokenizing -------------------------------------------------------------------
def chat_template_for(config, tokenizer) -> ChatTemplate | None:
    """The template data.chat_template names, with the tokenizer's special tokens; None without chat data."""
    formats = {s.data.format for s in data_check.sources(config)} | {config.data.format}
    if "chat" not in formats:
        return None
    try:
        return resolve_chat_template(config.data.chat_template, getattr(tokenizer, "chat_template", None),
                                     tokenizer.bos_token or "", tokenizer.eos_token or "")
    except TemplateError as exc:
        raise DataError(str(exc)) from None


def encode(rendered: list[Rendered], tokenizer) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) per rendered row. Runs of pieces with the same trained flag are tokenized as
    one text, each run on its own, in two batched tokenizer calls (first runs may get BOS)."""
    runs: list[list[tuple[str, bool]]] = []
    for r in rendered:
        merged: list[tuple[str, bool]] = []
        for seg in r.segments:
            if merged and merged[-1][1] == seg.trained:
                merged[-1] = (merged[-1][0] + seg.text, seg.trained)
            else:
                merged.append((seg.text, seg.trained))
        runs.append(merged or [("", False)])
    first = [r[0][0] for r in runs]
    rest = [text for r in runs for text, _ in r[1:]]
    with_special = [x.add_special_tokens for x in rendered]
    first_ids = _batch(tokenizer, [t for t, s in zip(first, with_special) if s], True)
    first_plain = _batch(tokenizer, [t for t, s in zip(first, with_special) if not s], False)
    rest_ids = iter(_batch(tokenizer, rest, False))
    special_iter, plain_iter = iter(first_ids), iter(first_plain)
    eos = tokenizer.eos_token_id
    out = []
    for r, merged in zip(rendered, runs):
        ids: list[int] = []
        labels: list[int] = []
        for k, (_, trained) in enumerate(merged):
            part = (next(special_iter) if r.add_special_tokens else next(plain_iter)) if k == 0 else next(rest_ids)
            ids += part
            labels += part if trained else [IGNORE] * len(part)
        if r.add_eos and eos is not None and (not ids or ids[-1] != eos):
            ids.append(eos)
            labels.append(eos)
        out.append((ids, labels))
    return out


def _batch(tokenizer, texts: list[str], special: bool) -> list[list[int]]:
    """Token ids of many texts at once: the fast tokenizer's Rust backend (what `tokenizer(texts)` runs,
    without the per-text Python around it), else the tokenizer's own call."""
    if not texts:
        return []
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return [e.ids for e in backend.encode_batch(texts, add_special_tokens=special)]
    return tokenizer(texts, add_special_tokens=special)["input_ids"]


def columns(ds, *names: str) -> list[list]:
    """Whole columns as Python lists, fast (datasets' row-by-row column iteration is slow)."""
    table = ds.select_columns(list(names)).with_format("arrow")[:]  # one Arrow table, indices applied
    return [table.column(name).to_pylist() for name in names]


def tokenize_example(row: dict, tokenizer, data, template: ChatTemplate | None = None) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for one row of data.format (tests and tools; training goes through tokenize_dataset)."""
    if data.format == "chat" and template is None:
        template = resolve_chat_template(data.chat_template, tokenizer.chat_template, tokenizer.bos_token or "",
                                         tokenizer.eos_token or "")
    return encode([render_row(row, data, template)], tokenizer)[0]


def classify(ids: list[int], labels: list[int], rendered: Rendered, max_len: int, truncation: bool):
    """(input_ids, labels, status, cause) after the max_seq_length rule; status in kept/truncated/DROP_REASONS."""
    trained = [seg for seg in rendered.segments if seg.trained]
    if not rendered.text.strip() or (trained and not "".join(seg.text for seg in trained).strip()):
        return ids, labels, "empty", "the text to train on is empty"
    if not trained:
        roles = {seg.role for seg in rendered.segments}
        cause = ("no turn of a role in data.roles_to_train" if roles & {"user", "system", "tool", "assistant"}
                 else "the template puts everything in the prompt")
        return ids, labels, "no_trainable", cause + " (nothing is trained)"
    status, cause = "kept", ""
    trainable_before = any(label != IGNORE for label in labels[1:])
    if len(ids) > max_len:
        if not truncation:
            return ids, labels, "too_long", f"{len(ids)} tokens > max_seq_length {max_len}"
        ids, labels, status = ids[:max_len], labels[:max_len], "truncated"
    if not any(label != IGNORE for label in labels[1:]):  # the first label is never predicted
        if trainable_before:
            cause = f"truncation to max_seq_length {max_len} cuts off the whole answer"
        else:
            cause = "the template puts everything in the prompt (nothing is trained)"
        return ids, labels, "no_trainable", cause
    return ids, labels, status, cause


def tokenize_dataset(ds, tokenizer, data, max_len: int, desc: str, template: ChatTemplate | None = None,
                     label: str = "data.path"):
    """Every row as input_ids/labels plus `length` (before truncation), `status` and `cause`."""
    needed = {
        "text": {"data.text_field": data.text_field},
        "instruction": {"data.instruction_field": data.instruction_field,
                        "data.output_field": data.output_field},
        "chat": {"data.messages_field": data.messages_field},
    }[data.format]
    _require_columns(ds, needed, data.format)
    if data.format == "chat" and template is None:
        raise DataError("the chat format needs a chat template (data.chat_template)")

    def convert(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        rendered = []
        for index, row in zip(indices, rows):
            try:
                rendered.append(render_row(row, data, template))
            except (RowError, TemplateError) as exc:
                raise DataError(f"{label} ({data.path}): row {index + 1}: {exc}") from None
        out: dict[str, list] = {"input_ids": [], "labels": [], "length": [], "status": [], "cause": []}
        for (ids, labels), r in zip(encode(rendered, tokenizer), rendered):
            length = len(ids)
            ids, labels, status, cause = classify(ids, labels, r, max_len, data.truncation)
            for key, value in (("input_ids", ids), ("labels", labels), ("length", length), ("status", status),
                               ("cause", cause)):
                out[key].append(value)
        return out

    try:
        return ds.map(convert, batched=True, batch_size=1000, with_indices=True, remove_columns=ds.column_names,
                      desc=desc)
    except DataError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"cannot render rows as data.format = {data.format!r}: {type(exc).__name__}: {exc}") from exc


def _count(tokenized, counts: SourceCounts) -> None:
    for status, cause in zip(*columns(tokenized, "status", "cause")):
        if status in DROP_REASONS:
            counts.dropped[status] = counts.dropped.get(status, 0) + 1
            if status == "no_trainable":
                counts.no_trainable_causes[cause] = counts.no_trainable_causes.get(cause, 0) + 1
        else:
            counts.kept += 1
            counts.truncated += status == "truncated"


def _weighted(ds, weight: float, seed: int):
    """Rows repeated floor(weight) times plus a random share of the fraction left (0.5: a random half)."""
    if weight == 1.0 or len(ds) == 0:
        return ds
    whole, frac = int(weight), weight - int(weight)
    order = list(range(len(ds))) * whole
    extra = list(range(len(ds)))
    random.Random(seed).shuffle(extra)
    order += sorted(extra[: round(frac * len(ds))])
    return ds.select(order)


def _kept(ds):
    (statuses,) = columns(ds, "status")
    keep = [s not in DROP_REASONS for s in statuses]
    return ds.select([i for i, k in enumerate(keep) if k]).select_columns(["input_ids", "labels"])


# --- packing ------------------------------------------------------------------------------------
def pack(ds, max_len: int):
    """Best-fit-decreasing: fill rows of <= max_len tokens with whole examples; position ids restart."""
    import datasets

    all_ids, all_labels = columns(ds, "input_ids", "labels")
    lengths = [len(x) for x in all_ids]
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (space left, bin index), kept sorted for bisect
    for i in order:
        need = lengths[i]
        at = bisect.bisect_left(free, (need, -1))
        if at < len(free):  # the fullest bin that still has room
            space, b = free.pop(at)
        else:
            space, b = max_len, len(bins)
            bins.append([])
        bins[b].append(i)
        if space - need > 0:
            bisect.insort(free, (space - need, b))
    input_ids, labels, positions = [], [], []
    for members in bins:
        row_ids, row_labels, row_pos = [], [], []
        for i in sorted(members):  # data order inside a row; rows are shuffled by the Trainer
            row_ids += all_ids[i]
            row_labels += [IGNORE] + all_labels[i][1:]  # the first token is not predicted from the previous example
            row_pos += list(range(lengths[i]))
        input_ids.append(row_ids)
        labels.append(row_labels)
        positions.append(row_pos)
    return datasets.Dataset.from_dict({"input_ids": input_ids, "labels": labels, "position_ids": positions})


# --- collators ----------------------------------------------------------------------------------
class PadCollator:
    """Pads a batch to its longest row (or to max_len): pad id in inputs, -100 in labels."""

    def __init__(self, pad_id: int, pad_to: int | None = None):
        self.pad_id = pad_id
        self.pad_to = pad_to

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        width = self.pad_to or max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):
            n = len(row["input_ids"])
            ids[r, :n] = torch.tensor(row["input_ids"])
            labels[r, :n] = torch.tensor(row["labels"])
            mask[r, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


class PackedCollator:
    """Batches packed rows (position ids restart at each example; no attention mask, so transformers
    builds a block-diagonal mask from the position ids and no example attends to another).

    flatten=True concatenates the batch into one padding-free row: ideal with flash_attention_2,
    whose variable-length kernels cost nothing for the extra length. With sdpa/eager attention a
    flattened row would compute a (batch*len)^2 mask, so rows are instead padded to the longest
    one; the few pad tokens form their own segment with labels -100 and touch nothing else.
    """

    def __init__(self, pad_id: int, flatten: bool):
        self.pad_id = pad_id
        self.flatten = flatten

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        if self.flatten:
            rows = [{key: [v for row in rows for v in _positions_or(row, key)]
                     for key in ("input_ids", "labels", "position_ids")}]
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        positions = torch.arange(width, dtype=torch.long).repeat(len(rows), 1)
        for r, row in enumerate(rows):
            n = len(row["input_ids"])
            pos = torch.tensor(_positions_or(row, "position_ids"), dtype=torch.long)
            ids[r, :n] = torch.tensor(row["input_ids"])
            # The first token of each example is not predicted from the end of the previous one.
            labels[r, :n] = torch.where(pos == 0, IGNORE, torch.tensor(row["labels"]))
            positions[r, :n] = pos
            positions[r, n:] = torch.arange(width - n)  # padding: a separate, fully masked segment
        return {"input_ids": ids, "labels": labels, "position_ids": positions}


def _positions_or(row: dict, key: str) -> list[int]:
    if key == "position_ids" and not row.get("position_ids"):
        return list(range(len(row["input_ids"])))
    return row[key]


# --- the whole pipeline -------------------------------------------------------------------------
def prepare(config, tokenizer, *, main_process_first=None, keep_rows: bool = False) -> PreparedData:
    """Load every source, render, tokenize, drop, weight, mix, split off the eval set and pack.

    keep_rows: keep the tokenized rows before dropping in `report.tokenized` (for the preview).
    """
    import datasets

    d = config.data
    max_len = d.max_seq_length
    seed = config.training.seed
    template = chat_template_for(config, tokenizer)
    report = DataReport(template=template.name if template else "")
    parts, everything, held_out = [], [], []
    split_here = d.eval_split > 0 and not d.eval_path
    for source in data_check.sources(config):
        check_before_loading(source)
        raw = load_rows(source.data.path, source.data.split, what=source.label)
        if len(raw) == 0:
            raise DataError(f"{source.label}: {source.data.path} has no rows")
        if source.max_samples and len(raw) > source.max_samples:
            raw = raw.select(range(source.max_samples))
        counts = SourceCounts(source.label, source.data.path, read=len(raw))
        tokenized = tokenize_dataset(raw, tokenizer, source.data, max_len, f"tokenize {source.label}", template,
                                     source.label)
        _count(tokenized, counts)
        kept = _kept(tokenized)
        if split_here and len(kept) > 1:  # held out per source, before any repeats, so eval rows never train
            split = kept.train_test_split(test_size=d.eval_split, seed=seed)
            kept = split["train"]
            held_out.append(split["test"])
        kept = _weighted(kept, source.weight, seed)
        counts.used = len(kept)
        report.sources.append(counts)
        parts.append(kept)
        if keep_rows:
            everything.append(tokenized.add_column("source", [source.label] * len(tokenized)))
    if keep_rows:
        report.tokenized = datasets.concatenate_datasets(everything) if len(everything) > 1 else everything[0]
    train = datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    warnings: list[str] = []
    for counts in report.sources:
        for reason, n in counts.dropped.items():
            why = DROP_REASONS[reason]
            if reason == "no_trainable":
                why += " (" + "; ".join(counts.no_trainable_causes) + ")"
            warnings.append(f"{counts.label}: {n} of {counts.read} rows dropped: {why}")
    if len(train) == 0:
        reasons = "; ".join(warnings) or "every row was dropped"
        raise DataError(f"no training examples left after tokenizing: {reasons}")
    evald = None
    if d.eval_path:
        (source,) = data_check.sources(config, eval_data=True)
        check_before_loading(source)
        raw_eval = load_rows(d.eval_path, d.split, what="data.eval_path")
        evald = _kept(tokenize_dataset(raw_eval, tokenizer, source.data, max_len, "tokenize eval", template,
                                       "data.eval_path"))
        report.eval_source = "data.eval_path"
    elif split_here and held_out:
        evald = datasets.concatenate_datasets(held_out) if len(held_out) > 1 else held_out[0]
        report.eval_source = "data.eval_split"
    report.eval_rows = len(evald) if evald is not None else 0
    num_train, num_eval = len(train), report.eval_rows
    if d.packing:
        train = pack(train, max_len)
        if evald is not None and len(evald):
            evald = pack(evald, max_len)
    return PreparedData(train, evald if evald is not None and len(evald) else None, num_train, num_eval, warnings,
                        packed=d.packing, report=report)


def collator_for(config, tokenizer):
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if config.data.packing:
        return PackedCollator(pad_id, flatten=config.model.attn_implementation == "flash_attention_2")
    pad_to = config.data.max_seq_length if config.data.padding == "max_length" else None
    return PadCollator(pad_id, pad_to)
