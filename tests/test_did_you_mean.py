""""Did you mean" for realistic mistakes: abbreviations, misspellings and other tools' names for our fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner import presets
from runner.field_names import ALIASES, suggest_key
from runner.problems import did_you_mean
from runner.schema import FIELDS_BY_KEY, SECTIONS

# (section written in, key written, the field it should point at)
TYPOS = [
    # other tools' names (Axolotl, LLaMA-Factory, torchtune, nanoGPT, Lightning, torchrun, older transformers)
    ("training", "warmup", "training.warmup_steps"),
    ("training", "warmup_ratio", "training.warmup_steps"),
    ("training", "num_warmup_steps", "training.warmup_steps"),
    ("training", "lr", "training.learning_rate"),
    ("training", "batch_size", "training.per_device_train_batch_size"),
    ("training", "micro_batch_size", "training.per_device_train_batch_size"),
    ("training", "eval_batch_size", "training.per_device_eval_batch_size"),
    ("training", "epochs", "training.num_train_epochs"),
    ("training", "num_epochs", "training.num_train_epochs"),
    ("training", "max_iters", "training.max_steps"),
    ("training", "accumulate_grad_batches", "training.gradient_accumulation_steps"),
    ("training", "evaluation_strategy", "training.eval_strategy"),
    ("training", "optimizer", "training.optim"),
    ("training", "lr_scheduler", "training.lr_scheduler_type"),
    ("training", "grad_clip", "training.max_grad_norm"),
    ("training", "seq_length", "data.max_seq_length"),
    ("data", "seq_length", "data.max_seq_length"),
    ("data", "cutoff_len", "data.max_seq_length"),
    ("data", "sequence_len", "data.max_seq_length"),
    ("data", "block_size", "data.max_seq_length"),
    ("data", "val_set_size", "data.eval_split"),
    ("data", "dataset", "data.path"),
    ("lora", "dropout", "lora.lora_dropout"),
    ("model", "dropout", "model.hidden_dropout"),
    ("lora", "lora_r", "lora.r"),
    ("lora", "alpha", "lora.lora_alpha"),
    ("lora", "lora_target", "lora.target_modules"),
    ("model", "base_model", "model.name_or_path"),
    ("model", "model_name_or_path", "model.name_or_path"),
    ("launch", "nnodes", "launch.num_machines"),
    ("launch", "node_rank", "launch.machine_rank"),
    ("launch", "master_addr", "launch.main_process_ip"),
    ("launch", "num_gpus", "launch.num_processes"),
    ("generation", "max_tokens", "generation.max_new_tokens"),
    # abbreviations
    ("training", "grad_accum_steps", "training.gradient_accumulation_steps"),
    ("training", "grad_accum", "training.gradient_accumulation_steps"),
    ("training", "lr_sched", "training.lr_scheduler_type"),
    ("training", "grad_ckpt", "training.gradient_checkpointing"),
    ("training", "train_batch", "training.per_device_train_batch_size"),
    ("data", "max_seq", "data.max_seq_length"),
    ("quantization", "4bit", "quantization.load_in_4bit"),
    # misspellings and case
    ("training", "lr_schedular", "training.lr_scheduler_type"),
    ("training", "learnig_rate", "training.learning_rate"),
    ("training", "learning-rate", "training.learning_rate"),
    ("training", "Learning_Rate", "training.learning_rate"),
    ("training", "weight_decy", "training.weight_decay"),
    ("training", "gradient_acumulation_steps", "training.gradient_accumulation_steps"),
    ("training", "num_train_epoch", "training.num_train_epochs"),
    ("training", "eval_stratgy", "training.eval_strategy"),
    ("lora", "lora_alhpa", "lora.lora_alpha"),
    ("lora", "target_module", "lora.target_modules"),
    ("model", "name_or_pth", "model.name_or_path"),
    ("quantization", "load_in_4_bit", "quantization.load_in_4bit"),
]


@pytest.mark.parametrize("section, written, meant", TYPOS, ids=[f"{s}.{w}" for s, w, _ in TYPOS])
def test_a_realistic_mistake_gets_the_right_suggestion(section: str, written: str, meant: str) -> None:
    assert suggest_key(section, written) == meant


@pytest.mark.parametrize("section, written, meant", TYPOS[:6] + TYPOS[15:17] + TYPOS[-4:],
                         ids=[f"{s}.{w}" for s, w, _ in TYPOS[:6] + TYPOS[15:17] + TYPOS[-4:]])
def test_the_suggestion_reaches_the_message(section: str, written: str, meant: str, tmp_path: Path) -> None:
    preset = tmp_path / "typo.toml"
    preset.write_text(f"[{section}]\n{written} = 1\n")
    (problem,) = [p for p in presets.load(preset).errors if p.key == f"{section}.{written}"]
    target_section, target = meant.split(".")
    expected = f"did you mean '{target}'?" if target_section == section else f"did you mean '{meant}'?"
    assert expected in problem.hint and problem.line == 2


def test_unrelated_words_get_no_suggestion() -> None:
    for section, written in (("training", "banana"), ("lora", "zebra_count"), ("data", "qqq")):
        assert suggest_key(section, written) is None, written


def test_every_alias_points_at_a_real_field_and_shadows_none() -> None:
    names = {key.split(".")[1] for key in FIELDS_BY_KEY}
    for alias, targets in ALIASES.items():
        assert alias not in names, f"{alias} is a real field name"
        assert all(t in FIELDS_BY_KEY for t in targets), alias


def test_section_names_and_other_words() -> None:
    assert did_you_mean("trainig", SECTIONS) == "training"
    assert did_you_mean("Lora", SECTIONS) == "lora"
    assert did_you_mean("qlora-8bb", ["qlora-8b", "qlora-70b", "lora-1b"]) == "qlora-8b"
