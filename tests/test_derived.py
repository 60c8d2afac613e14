"""Derived numbers use transformers' own rounding."""

from __future__ import annotations

import json
from pathlib import Path

from runner.derived import count_examples, derive
from runner.schema import Config


def config(**training: object) -> Config:
    return Config.model_validate({"training": training, "launch": {"num_processes": 2}})


def test_effective_batch_steps_and_warmup_ratio() -> None:
    c = config(per_device_train_batch_size=8, gradient_accumulation_steps=4, num_train_epochs=3, warmup_steps=0.05)
    d = derive(c, num_examples=1000)
    assert d.effective_batch_size == 64 and d.world_size == 2
    # 1000 examples / (8 x 2 processes) = 63 batches per process; 63 // 4 + a partial update = 16
    assert d.steps_per_epoch == 16 and d.total_steps == 48
    assert d.warmup_steps == 3 and d.warmup_is_ratio  # ceil(48 x 0.05)
    assert d.tokens_per_step == 64 * c.data.max_seq_length


def test_max_steps_wins_and_warmup_steps_are_steps() -> None:
    d = derive(config(max_steps=100, warmup_steps=10), num_examples=None)
    assert d.total_steps == 100 and d.warmup_steps == 10 and not d.warmup_is_ratio
    assert d.steps_per_epoch is None


def test_unknown_dataset_size_leaves_steps_unknown() -> None:
    d = derive(config(warmup_steps=0.1))
    assert d.total_steps is None and d.warmup_steps is None


def test_count_examples_reads_local_jsonl_and_takes_out_the_eval_split(tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(200)) + "\n")
    c = Config.model_validate({"data": {"path": str(data)}})
    assert count_examples(c) == 200
    c.data.eval_split = 0.05
    assert count_examples(c) == 190
    relative = Config.model_validate({"data": {"path": "train.jsonl"}})
    assert count_examples(relative, base_dir=tmp_path) == 200
    assert count_examples(Config.model_validate({"data": {"path": "org/some-hub-dataset"}})) is None


def test_count_examples_knows_the_bundled_demo_set() -> None:
    n = count_examples(Config())
    assert n is not None and n > 100
