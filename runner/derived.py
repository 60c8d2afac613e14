"""Numbers that follow from a config: effective batch, steps, warmup, tokens per step.

Computed here once, with transformers' own rounding, and shown by `tunedeck show`, the
editor and the runner. Nothing here imports torch.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from runner.schema import Config
from runner.demo_spec import DEMO_DATA, demo_data_file

# Files larger than this are not line-counted while the user types; the count would be slow.
MAX_COUNTED_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Derived:
    world_size: int  # processes across all machines
    effective_batch_size: int  # examples per optimizer update
    tokens_per_step: int  # upper bound: every example padded or packed to max_seq_length
    num_examples: int | None
    steps_per_epoch: int | None  # optimizer updates per epoch
    total_steps: int | None
    warmup_steps: int | None
    warmup_is_ratio: bool
    num_epochs: float | None  # epochs the run covers (from max_steps when that is set)


def world_size(config: Config) -> int:
    return config.launch.num_processes * config.launch.num_machines


def derive(config: Config, num_examples: int | None = None, world: int | None = None) -> Derived:
    t = config.training
    world = world or world_size(config)
    # One optimizer update consumes batch x accumulation examples on every process.
    effective = t.per_device_train_batch_size * t.gradient_accumulation_steps * world
    tokens = effective * config.data.max_seq_length
    steps_per_epoch = None
    if num_examples is not None and num_examples > 0:
        # Batches each process sees per epoch (the sampler splits the data across processes).
        batches = math.ceil(num_examples / (t.per_device_train_batch_size * world))
        # transformers counts a trailing partial accumulation as one more update.
        steps_per_epoch = max(batches // t.gradient_accumulation_steps + int(batches % t.gradient_accumulation_steps > 0), 1)
    if t.max_steps > 0:
        total = t.max_steps
    elif steps_per_epoch is not None:
        total = math.ceil(t.num_train_epochs * steps_per_epoch)
    else:
        total = None
    ratio = isinstance(t.warmup_steps, float) and t.warmup_steps < 1
    if not ratio:
        warmup = int(t.warmup_steps)
    elif total is not None:
        warmup = math.ceil(total * t.warmup_steps)  # transformers' get_warmup_steps
    else:
        warmup = None
    epochs = None
    if t.max_steps > 0 and steps_per_epoch:
        epochs = t.max_steps / steps_per_epoch
    elif t.max_steps <= 0:
        epochs = t.num_train_epochs
    return Derived(world, effective, tokens, num_examples, steps_per_epoch, total, warmup, ratio, epochs)


def count_examples(config: Config, base_dir: Path | None = None) -> int | None:
    """Examples in the training data when that is cheap to know (local JSONL/CSV, the demo set), else None.

    Each source (data.path, or every [[data.datasets]] entry) is capped at its max_samples and scaled by
    its weight, and the eval split is taken out, as the runner does.
    """
    from runner.data_check import sources

    count = 0
    for source in sources(config):
        rows = _count_rows(source.data.path, base_dir)
        if rows is None:
            return None
        if source.max_samples:
            rows = min(rows, source.max_samples)
        if config.data.eval_split > 0 and not config.data.eval_path and rows > 1:
            rows -= math.ceil(rows * config.data.eval_split)  # held out per source; train_test_split rounds up
        whole = int(source.weight)
        count += rows * whole + round((source.weight - whole) * rows)
    return max(count, 0)


def _count_rows(path_text: str, base_dir: Path | None) -> int | None:
    if path_text == DEMO_DATA:
        path = demo_data_file()
    else:
        path = Path(os.path.expanduser(path_text))
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
    try:
        if not path.is_file() or path.stat().st_size > MAX_COUNTED_BYTES:
            return None
        suffix = path.suffix.lower()
        if suffix not in (".jsonl", ".csv"):
            return None
        with path.open("rb") as handle:
            count = sum(1 for line in handle if line.strip())
    except OSError:
        return None
    return count - 1 if suffix == ".csv" else count  # a CSV's header row
