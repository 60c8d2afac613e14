"""Training data: load rows with `datasets`, render them per data.format, tokenize, mask, pack.

Each example becomes `input_ids` and `labels` (prompt tokens set to -100 when
data.completion_only_loss is on). Packing places several examples in one row of at most
max_seq_length tokens with position ids restarting per example, and the model keeps attention inside each
example (transformers derives the block-diagonal mask from the restarting position ids).
With flash_attention_2 a batch is flattened into one padding-free row; see PackedCollator.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.diagnose import DataError
from runner.problems import did_you_mean

IGNORE = -100  # label value the loss skips
LOCAL_SUFFIXES = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}

# The instruction format's prompt template (Alpaca-style headers so prompt and answer are obvious).
PROMPT_WITH_INPUT = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
PROMPT_NO_INPUT = "### Instruction:\n{instruction}\n\n### Response:\n"


def render_instruction(instruction: str, input_text: str | None, output: str) -> tuple[str, str]:
    """(prompt, answer) for one instruction example; an empty input leaves its header out."""
    if input_text is not None and str(input_text).strip():
        prompt = PROMPT_WITH_INPUT.format(instruction=instruction, input=input_text)
    else:
        prompt = PROMPT_NO_INPUT.format(instruction=instruction)
    return prompt, str(output)


@dataclass
class PreparedData:
    train: Any  # datasets.Dataset with input_ids, labels (and position_ids when packed)
    eval: Any | None
    num_train_examples: int
    num_eval_examples: int
    warnings: list[str] = field(default_factory=list)
    packed: bool = False


# --- loading ------------------------------------------------------------------------------------
def load_rows(path: str, split: str, what: str = "data.path"):
    """A datasets.Dataset from a local file/dir, a Hub id, or the bundled demo."""
    import datasets

    datasets.disable_progress_bars()
    if path == "tunedeck:demo":
        from runner.train_demo import demo_data_file

        path = str(demo_data_file())
    local = Path(os.path.expanduser(path))
    try:
        if local.is_file():
            builder = LOCAL_SUFFIXES.get(local.suffix.lower())
            if builder is None:
                raise DataError(f"{what}: {path} is not a .jsonl/.json/.csv/.parquet file")
            return datasets.load_dataset(builder, data_files=str(local), split="train")
        if local.is_dir():
            files = sorted(p for p in local.rglob("*") if p.suffix.lower() in LOCAL_SUFFIXES)
            if not files:
                raise DataError(f"{what}: directory {path} holds no .jsonl/.json/.csv/.parquet files")
            kinds = {LOCAL_SUFFIXES[p.suffix.lower()] for p in files}
            if len(kinds) > 1:
                raise DataError(f"{what}: directory {path} mixes file types {sorted(kinds)}; keep one kind")
            return datasets.load_dataset(kinds.pop(), data_files=[str(p) for p in files], split="train")
        if path.startswith((".", "/", "~")) or local.suffix.lower() in LOCAL_SUFFIXES:
            raise DataError(f"{what}: no such file or directory: {path}")
        return datasets.load_dataset(path, split=split)  # a Hub dataset id
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - datasets raises many kinds; all mean "cannot read data"
        raise DataError(f"{what}: cannot load {path!r}: {type(exc).__name__}: {exc}") from exc


def _require_columns(ds, needed: dict[str, str], data_format: str) -> None:
    for key, column in needed.items():
        if column not in ds.column_names:
            hint = did_you_mean(column, ds.column_names)
            raise DataError(
                f"missing column {column!r} ({key}) needed by data.format = {data_format!r}; the dataset has "
                f"columns {ds.column_names}" + (f"; did you mean {hint!r}?" if hint else "")
            )


# --- tokenizing ---------------------------------------------------------------------------------
def _encode(tokenizer, text: str, first: bool) -> list[int]:
    return tokenizer(text, add_special_tokens=first)["input_ids"]


def _with_eos(tokenizer, ids: list[int]) -> list[int]:
    eos = tokenizer.eos_token_id
    return ids + [eos] if eos is not None and (not ids or ids[-1] != eos) else ids


def tokenize_example(row: dict, tokenizer, data) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for one row of data.format."""
    if data.format == "text":
        ids = _with_eos(tokenizer, _encode(tokenizer, str(row[data.text_field]), True))
        return ids, list(ids)
    if data.format == "instruction":
        prompt, answer = render_instruction(row[data.instruction_field], row.get(data.input_field),
                                            row[data.output_field])
        prompt_ids = _encode(tokenizer, prompt, True)
        answer_ids = _with_eos(tokenizer, _encode(tokenizer, answer, False))
        prompt_labels = [IGNORE] * len(prompt_ids) if data.completion_only_loss else list(prompt_ids)
        return prompt_ids + answer_ids, prompt_labels + answer_ids
    return _tokenize_chat(row[data.messages_field], tokenizer, data.completion_only_loss)


def _tokenize_chat(messages: list[dict], tokenizer, completion_only: bool) -> tuple[list[int], list[int]]:
    """Render with the chat template turn by turn; assistant turns (minus their header) are trained."""
    if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m for m in messages):
        raise DataError("chat rows need a list of {role, content} messages")
    render = lambda msgs, gen=False: tokenizer.apply_chat_template(  # noqa: E731
        msgs, tokenize=False, add_generation_prompt=gen)
    ids: list[int] = []
    labels: list[int] = []
    done = ""
    full = render(messages)
    for k, message in enumerate(messages):
        upto = render(messages[: k + 1])
        if not upto.startswith(done):  # a template that rewrites earlier turns: train on everything
            ids = _encode(tokenizer, full, False)
            return ids, list(ids)
        if message["role"] == "assistant" and completion_only:
            header = render(messages[:k], True) if k else ""
            header = header if header.startswith(done) and upto.startswith(header) else done
            head_ids = _encode(tokenizer, header[len(done):], False)
            body_ids = _encode(tokenizer, upto[len(header):], False)
            ids += head_ids + body_ids
            labels += [IGNORE] * len(head_ids) + body_ids
        else:
            part = _encode(tokenizer, upto[len(done):], False)
            ids += part
            labels += [IGNORE] * len(part) if completion_only else part
        done = upto
    return ids, labels


def tokenize_dataset(ds, tokenizer, data, max_len: int, desc: str):
    """Map rows to input_ids/labels; over-long rows are cut (truncation) or dropped."""
    needed = {
        "text": {"data.text_field": data.text_field},
        "instruction": {"data.instruction_field": data.instruction_field,
                        "data.output_field": data.output_field},
        "chat": {"data.messages_field": data.messages_field},
    }[data.format]
    _require_columns(ds, needed, data.format)

    def convert(row: dict) -> dict:
        ids, labels = tokenize_example(row, tokenizer, data)
        keep = True
        if len(ids) > max_len:
            keep = data.truncation
            ids, labels = ids[:max_len], labels[:max_len]
        keep = keep and any(label != IGNORE for label in labels[1:])  # something left to learn
        return {"input_ids": ids, "labels": labels, "keep": keep}

    try:
        mapped = ds.map(convert, remove_columns=ds.column_names, desc=desc)
    except DataError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"cannot render rows as data.format = {data.format!r}: {type(exc).__name__}: {exc}") from exc
    dropped = len(mapped) - sum(mapped["keep"])
    mapped = mapped.filter(lambda keep: keep, input_columns="keep").remove_columns("keep")
    return mapped, dropped


# --- packing ------------------------------------------------------------------------------------
def pack(ds, max_len: int):
    """Best-fit-decreasing: fill rows of <= max_len tokens with whole examples; position ids restart."""
    import datasets

    lengths = [len(x) for x in ds["input_ids"]]
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
    all_ids, all_labels = ds["input_ids"], ds["labels"]
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
def prepare(config, tokenizer, *, main_process_first=None) -> PreparedData:
    data = config.data
    max_len = data.max_seq_length
    raw = load_rows(data.path, data.split)
    if len(raw) == 0:
        raise DataError(f"data.path: {data.path} has no rows")
    warnings: list[str] = []
    raw_eval = None
    if data.eval_path:
        raw_eval = load_rows(data.eval_path, data.split, what="data.eval_path")
    elif data.eval_split > 0:
        parts = raw.train_test_split(test_size=data.eval_split, seed=config.training.seed)
        raw, raw_eval = parts["train"], parts["test"]
    train, dropped = tokenize_dataset(raw, tokenizer, data, max_len, "tokenize train")
    if dropped:
        what = "longer than max_seq_length or with nothing to learn" if not data.truncation else "with nothing to learn"
        warnings.append(f"{dropped} training examples dropped ({what})")
    if len(train) == 0:
        raise DataError("no training examples left after tokenizing; check data.format and data.max_seq_length")
    evald = None
    if raw_eval is not None and len(raw_eval):
        evald, _ = tokenize_dataset(raw_eval, tokenizer, data, max_len, "tokenize eval")
    num_train, num_eval = len(train), len(evald) if evald is not None else 0
    if data.packing:
        train = pack(train, max_len)
        if evald is not None:
            evald = pack(evald, max_len)
    return PreparedData(train, evald, num_train, num_eval, warnings, packed=data.packing)


def collator_for(config, tokenizer):
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if config.data.packing:
        return PackedCollator(pad_id, flatten=config.model.attn_implementation == "flash_attention_2")
    pad_to = config.data.max_seq_length if config.data.padding == "max_length" else None
    return PadCollator(pad_id, pad_to)
