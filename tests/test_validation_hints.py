"""Every cross-field problem tells the user how to fix it: the hint beside each rule's message.

tests/test_validation_rules.py pins which configs trip each rule and what the message says; this
table pins the fix each one offers (written from the mutation benchmark's survivors, which showed
that a hint could be dropped or reworded with no test failing).
"""

from __future__ import annotations

from typing import Any

import pytest

from runner.schema import Config
from runner.validate import Context, check

CPU = Context(cuda_available=False, gpu_count=0)
GPUS = Context(cuda_available=True, gpu_count=2)
EVAL = {"data.eval_split": 0.1, "training.eval_strategy": "steps"}
SCRATCH = {"model.from_scratch": True}
QLORA = {"quantization.load_in_4bit": True, "lora.enabled": True}


def build(values: dict[str, Any]) -> Config:
    nested: dict[str, dict[str, Any]] = {}
    for dotted, value in values.items():
        section, key = dotted.split(".", 1)
        nested.setdefault(section, {})[key] = value
    return Config.model_validate(nested)


# (values, machine, key the problem is on, fragment of its hint)
HINTS: list[tuple[dict[str, Any], Context | None, str, str]] = [
    ({"training.bf16": True, "training.fp16": True}, None, "training.fp16", "bf16 on Ampere or newer GPUs"),
    ({"training.bf16": True, "launch.mixed_precision": "fp16"}, None, "launch.mixed_precision", "set it to 'auto' or 'bf16'"),
    ({"training.fp16": True}, CPU, "training.fp16", "use bf16 or no mixed precision on CPU"),
    ({"quantization.load_in_4bit": True, "quantization.load_in_8bit": True, "lora.enabled": True}, None,
     "quantization.load_in_8bit", "choose one"),
    ({"quantization.load_in_4bit": True}, None, "lora.enabled", "set lora.enabled = true"),
    (QLORA, CPU, "quantization.load_in_4bit", "turn quantization off to train on CPU"),
    ({"training.optim": "paged_adamw_8bit"}, CPU, "training.optim", "use adamw_torch on CPU"),
    ({**QLORA, "training.bf16": True, "quantization.bnb_4bit_compute_dtype": "float16"}, None,
     "quantization.bnb_4bit_compute_dtype", "use bfloat16 to match"),
    ({"lora.enabled": True, **SCRATCH}, None, "lora.enabled", "lora.enabled = false"),
    ({"lora.enabled": True, "lora.target_modules": []}, None, "lora.target_modules", "'all-linear'"),
    ({"training.max_steps": -1, "training.num_train_epochs": 0}, None, "training.max_steps", "set num_train_epochs > 0"),
    ({"training.warmup_steps": 1.5}, None, "training.warmup_steps", "a fraction such as 0.05"),
    ({"training.warmup_steps": 0.5}, None, "training.warmup_steps", "0.03-0.1 is usual"),
    ({"training.max_steps": 10, "training.warmup_steps": 10}, None, "training.warmup_steps", "shorten the warmup"),
    ({"training.num_train_epochs": 20}, None, "training.num_train_epochs", "1-5 epochs is usual"),
    ({"training.learning_rate": 0.05}, None, "training.learning_rate", "1e-5 to 3e-4 is usual"),
    ({"training.learning_rate": 0.005, "lora.enabled": False}, None, "training.learning_rate", "1e-5 to 5e-5"),
    ({"training.learning_rate": 0.005, "lora.enabled": True}, None, "training.learning_rate", "1e-4 to 3e-4"),
    ({"data.eval_path": "eval.jsonl", "data.eval_split": 0.1}, None, "data.eval_split", "not both"),
    ({"training.eval_strategy": "steps"}, None, "training.eval_strategy", "set data.eval_path or data.eval_split"),
    ({"data.eval_split": 0.1}, None, "training.eval_strategy", "set eval_strategy = 'steps' or 'epoch'"),
    ({"training.load_best_model_at_end": True}, None, "training.load_best_model_at_end", "set eval_strategy"),
    ({**EVAL, "training.load_best_model_at_end": True, "training.save_strategy": "epoch"}, None,
     "training.save_strategy", "set save_strategy = 'steps'"),
    ({**EVAL, "training.load_best_model_at_end": True, "training.save_strategy": "steps", "training.eval_steps": 30,
      "training.save_steps": 50}, None, "training.save_steps", "make save_steps a multiple of eval_steps"),
    ({"training.early_stopping_patience": 3}, None, "training.early_stopping_patience", "set patience to 0"),
    ({**EVAL, "training.early_stopping_patience": 3}, None, "training.early_stopping_patience",
     "turn on training.load_best_model_at_end"),
    ({"training.save_strategy": "best"}, None, "training.save_strategy", "set eval_strategy"),
    ({"data.packing": True, "data.padding": "max_length"}, None, "data.padding", "use 'longest'"),
    ({**SCRATCH, "data.max_seq_length": 4096, "model.max_position_embeddings": 2048}, None, "data.max_seq_length",
     "raise model.max_position_embeddings"),
    ({"data.path": " "}, None, "data.path", "a hub dataset id"),
    ({**SCRATCH, "model.hidden_size": 100, "model.num_attention_heads": 3, "model.num_key_value_heads": 3}, None,
     "model.num_attention_heads", "64 or 128 per head"),
    ({**SCRATCH, "model.hidden_size": 256, "model.num_attention_heads": 4, "model.num_key_value_heads": 3}, None,
     "model.num_key_value_heads", "use a divisor of num_attention_heads"),
    ({**SCRATCH, "model.model_type": "gpt2", "model.hidden_size": 256, "model.num_attention_heads": 4,
      "model.num_key_value_heads": 2}, None, "model.num_key_value_heads", "set it equal to num_attention_heads"),
    ({**SCRATCH, "model.hidden_dropout": 0.6}, None, "model.hidden_dropout", "0.1 is usual"),
    ({"model.name_or_path": " "}, None, "model.name_or_path", "a hub id like"),
    ({"model.trust_remote_code": True}, None, "model.trust_remote_code", "read that code first"),
    ({"model.attn_implementation": "flash_attention_2", "training.bf16": True}, CPU, "model.attn_implementation",
     "use sdpa"),
    ({"model.attn_implementation": "flash_attention_2", "model.dtype": "float32"}, None, "model.attn_implementation",
     "turn on bf16 or fp16"),
    ({"training.weight_decay": 0.3}, None, "training.weight_decay", "0.01-0.1 is usual"),
    ({"training.max_grad_norm": 0}, None, "training.max_grad_norm", "1.0 is usual"),
    ({"launch.num_machines": 2}, CPU, "launch.main_process_ip", "set main_process_ip"),  # launching here
    ({"launch.num_machines": 2, "launch.main_process_ip": "10.0.0.1", "launch.machine_rank": 2}, None,
     "launch.machine_rank", "use 0..1"),
    ({"launch.gpu_ids": "0,x"}, None, "launch.gpu_ids", "write 'all' or indices like '0,1'"),
    ({"launch.gpu_ids": "0", "launch.num_processes": 2}, None, "launch.num_processes", "list one GPU per process"),
    ({"launch.strategy": "fsdp"}, GPUS, "launch.strategy", "use 'none' on one GPU"),
    ({"launch.strategy": "deepspeed", "launch.num_processes": 2}, CPU, "launch.strategy", "use 'ddp' or 'none' on CPU"),
    ({"generation.prompts": ["hi"], "generation.do_sample": True, "generation.temperature": 0}, None,
     "generation.temperature", "turn do_sample off"),
]


@pytest.mark.parametrize(("values", "machine", "key", "hint"), HINTS, ids=[f"{h[2]}:{h[3][:24]}" for h in HINTS])
def test_each_problem_names_its_fix(values: dict[str, Any], machine: Context | None, key: str, hint: str) -> None:
    problems = [p for p in check(build(values), machine) if p.key == key]
    assert problems, f"no problem on {key} for {values}"
    assert any(hint in p.hint for p in problems), [p.hint for p in problems]


def test_errors_come_before_warnings() -> None:
    problems = check(build({"model.trust_remote_code": True, "training.bf16": True, "training.fp16": True}))
    severities = [p.is_error for p in problems]
    assert severities[0] and not severities[-1] and severities == sorted(severities, reverse=True)


def test_no_eval_data_and_no_evaluation_is_not_flagged() -> None:
    # the default: nothing to evaluate on and evaluation off is consistent, not a warning
    assert not [p for p in check(build({})) if p.key == "training.eval_strategy"]


def test_clipping_off_says_what_it_risks() -> None:
    (problem,) = [p for p in check(build({"training.max_grad_norm": 0})) if p.key == "training.max_grad_norm"]
    assert problem.message == "gradient clipping is off, so one bad batch can blow up training"
