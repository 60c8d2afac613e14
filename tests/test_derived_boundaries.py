"""Derived numbers at their edges: each case is a value where a flipped comparison or a wrong
operator in runner/derived.py would change what the editor and `tunedeck show` print.
(Written from the mutation benchmark's survivors, benchmarks/mutation.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import runner.derived
from runner.derived import count_examples, derive, world_size
from runner.schema import Config


def config(launch: dict | None = None, **training: object) -> Config:
    return Config.model_validate({"training": training, "launch": launch or {"num_processes": 1}})


def test_world_size_is_processes_times_machines() -> None:
    c = config({"num_processes": 2, "num_machines": 3, "main_process_ip": "10.0.0.1"})
    assert world_size(c) == 6
    assert derive(c).world_size == 6 and derive(c).effective_batch_size == 6 * c.training.per_device_train_batch_size


def test_no_examples_means_no_steps_per_epoch() -> None:
    d = derive(config(), num_examples=0)
    assert d.steps_per_epoch is None and d.total_steps is None and d.num_examples == 0


def test_one_example_is_one_update_per_epoch() -> None:
    d = derive(config(per_device_train_batch_size=1, gradient_accumulation_steps=4, num_train_epochs=2), num_examples=1)
    assert d.steps_per_epoch == 1 and d.total_steps == 2 and d.num_examples == 1


def test_full_accumulation_has_no_extra_partial_update() -> None:
    # 8 batches with 4 accumulation steps: exactly 2 updates, no trailing partial one
    d = derive(config(per_device_train_batch_size=1, gradient_accumulation_steps=4), num_examples=8)
    assert d.steps_per_epoch == 2


def test_one_leftover_batch_is_one_more_update() -> None:
    # 5 batches, 4 per update: the 5th batch alone makes a partial update
    d = derive(config(per_device_train_batch_size=1, gradient_accumulation_steps=4), num_examples=5)
    assert d.steps_per_epoch == 2


def test_max_steps_zero_means_train_by_epochs() -> None:
    d = derive(config(max_steps=0, num_train_epochs=2, per_device_train_batch_size=1), num_examples=10)
    assert d.total_steps == 20 and d.num_epochs == 2


def test_max_steps_one_is_one_step() -> None:
    d = derive(config(max_steps=1, per_device_train_batch_size=1, num_train_epochs=5), num_examples=10)
    assert d.total_steps == 1 and d.num_epochs == pytest.approx(0.1)


def test_max_steps_without_dataset_size_leaves_epochs_unknown() -> None:
    assert derive(config(max_steps=1)).num_epochs is None
    assert derive(config(max_steps=100)).num_epochs is None


def test_epochs_covered_by_max_steps() -> None:
    d = derive(config(max_steps=25, per_device_train_batch_size=1), num_examples=10)
    assert d.steps_per_epoch == 10 and d.num_epochs == pytest.approx(2.5)


def test_epochs_by_default_are_the_configured_epochs() -> None:
    assert derive(config(num_train_epochs=3)).num_epochs == 3


@pytest.mark.parametrize(
    ("warmup", "is_ratio", "steps"),
    [
        (0, False, 0),  # an integer 0 is zero steps, not a ratio
        (0.5, True, 50),  # half of the 100 steps
        (1.0, False, 1),  # a float of 1 or more counts steps
        (1.5, False, 1),
    ],
)
def test_warmup_ratio_or_steps(warmup: float, is_ratio: bool, steps: int) -> None:
    d = derive(config(max_steps=100, warmup_steps=warmup))
    assert d.warmup_is_ratio is is_ratio and d.warmup_steps == steps


def test_counting_stops_above_the_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"text": f"r{i}"}) + "\n" for i in range(10)))
    c = Config.model_validate({"data": {"path": str(data)}})
    monkeypatch.setattr(runner.derived, "MAX_COUNTED_BYTES", data.stat().st_size)
    assert count_examples(c) == 10  # exactly at the limit: still counted
    monkeypatch.setattr(runner.derived, "MAX_COUNTED_BYTES", data.stat().st_size - 1)
    assert count_examples(c) is None


def test_a_directory_or_missing_file_is_not_counted(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").mkdir()
    assert count_examples(Config.model_validate({"data": {"path": str(tmp_path / "d.jsonl")}})) is None
    assert count_examples(Config.model_validate({"data": {"path": str(tmp_path / "none.jsonl")}})) is None


def test_csv_rows_are_counted_without_the_header(tmp_path: Path) -> None:
    data = tmp_path / "Train.CSV"
    data.write_text("text\n" + "".join(f"row {i}\n" for i in range(20)))
    c = Config.model_validate({"data": {"path": str(data)}})
    assert count_examples(c) == 20
    c.data.eval_split = 0.1
    assert count_examples(c) == 18
    (tmp_path / "only_header.csv").write_text("text\n")
    assert count_examples(Config.model_validate({"data": {"path": str(tmp_path / "only_header.csv")}})) == 0


def test_other_formats_are_not_counted(tmp_path: Path) -> None:
    (tmp_path / "train.parquet").write_bytes(b"PAR1\n" * 10)
    assert count_examples(Config.model_validate({"data": {"path": str(tmp_path / "train.parquet")}})) is None


def test_empty_file_counts_zero(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n\n")
    assert count_examples(Config.model_validate({"data": {"path": str(tmp_path / "empty.jsonl")}})) == 0


def test_eval_split_is_not_taken_out_when_an_eval_file_is_given(tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"text": f"r{i}"}) + "\n" for i in range(100)))
    c = Config.model_validate({"data": {"path": str(data), "eval_path": str(data), "eval_split": 0.1}})
    assert count_examples(c) == 100
    c.data.eval_path = ""
    assert count_examples(c) == 90


def _rows(path: Path, n: int) -> str:
    path.write_text("".join(json.dumps({"text": f"r{i}"}) + "\n" for i in range(n)))
    return str(path)


def test_max_samples_caps_the_count(tmp_path: Path) -> None:
    path = _rows(tmp_path / "train.jsonl", 50)
    assert count_examples(Config.model_validate({"data": {"path": path, "max_samples": 20}})) == 20
    assert count_examples(Config.model_validate({"data": {"path": path, "max_samples": 80}})) == 50


def test_a_mixture_adds_its_sources_by_weight(tmp_path: Path) -> None:
    a, b = _rows(tmp_path / "a.jsonl", 40), _rows(tmp_path / "b.jsonl", 10)
    mixture = [{"path": a, "weight": 0.5}, {"path": b, "weight": 3.0}]
    assert count_examples(Config.model_validate({"data": {"datasets": mixture}})) == 20 + 30
    mixture = [{"path": a, "weight": 2.5}, {"path": b}]
    assert count_examples(Config.model_validate({"data": {"datasets": mixture}})) == 100 + 10


def test_the_eval_split_leaves_a_one_row_source_whole(tmp_path: Path) -> None:
    one = Config.model_validate({"data": {"path": _rows(tmp_path / "one.jsonl", 1), "eval_split": 0.1}})
    assert count_examples(one) == 1
    two = Config.model_validate({"data": {"path": _rows(tmp_path / "two.jsonl", 2), "eval_split": 0.1}})
    assert count_examples(two) == 1
