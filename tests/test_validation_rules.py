"""Every cross-field rule in runner/validate.py, with the config that just trips it and the one just past it.

RULE_CASES is keyed by the rule's function name; `test_every_rule_has_cases` fails when a rule is added
to validate.RULES without cases here, so no rule can be dropped or added untested.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from runner import validate
from runner.problems import Problem
from runner.schema import Config
from runner.validate import Context, check

CPU = Context(cuda_available=False, gpu_count=0)  # launching here, on a machine without a GPU
NOTES = Context(cuda_available=False, gpu_count=0, launching=False)  # the same machine, editing or exporting


@dataclass(frozen=True)
class Case:
    values: dict[str, Any]  # "section.key" -> value
    key: str  # the key the problem is reported on
    says: str  # a fragment of its message
    present: bool = True  # False: the config just on the allowed side; the problem must not appear
    severity: str | None = "error"  # None: either (machine-dependent checks may become notes)
    context: Context | None = None


def on(values: dict[str, Any], key: str, says: str, **kw: Any) -> Case:
    return Case(values, key, says, True, **kw)


def off(values: dict[str, Any], key: str, says: str, **kw: Any) -> Case:
    return Case(values, key, says, False, **kw)


EVAL = {"data.eval_split": 0.1, "training.eval_strategy": "steps"}
BEST = {**EVAL, "training.load_best_model_at_end": True, "training.save_strategy": "steps"}
SCRATCH = {"model.from_scratch": True}
RULE_CASES: dict[str, list[Case]] = {
    "_precision": [
        on({"training.bf16": True, "training.fp16": True}, "training.fp16", "both on"),
        off({"training.bf16": True}, "training.fp16", "both on"),
        on({"training.bf16": True, "launch.mixed_precision": "fp16"}, "launch.mixed_precision", "contradicts"),
        off({"training.bf16": True, "launch.mixed_precision": "bf16"}, "launch.mixed_precision", "contradicts"),
        on({"training.fp16": True}, "training.fp16", "CUDA", severity=None, context=CPU),
        off({"training.fp16": True}, "training.fp16", "CUDA", severity=None),
        on({"training.tf32": True}, "training.tf32", "no effect", severity=None, context=CPU),
    ],
    "_quantization": [
        on({"quantization.load_in_4bit": True, "quantization.load_in_8bit": True, "lora.enabled": True},
           "quantization.load_in_8bit", "both on"),
        on({"quantization.load_in_4bit": True}, "lora.enabled", "needs LoRA"),
        off({"quantization.load_in_4bit": True, "lora.enabled": True}, "lora.enabled", "needs LoRA"),
        on({"quantization.load_in_8bit": True, "lora.enabled": True, **SCRATCH}, "quantization.load_in_8bit",
           "from scratch"),
        on({"quantization.load_in_4bit": True, "lora.enabled": True}, "quantization.load_in_4bit", "NVIDIA GPU",
           severity=None, context=CPU),
        on({"training.optim": "paged_adamw_8bit"}, "training.optim", "bitsandbytes", severity=None, context=CPU),
        off({"training.optim": "adamw_torch"}, "training.optim", "bitsandbytes", severity=None, context=CPU),
        on({"quantization.load_in_4bit": True, "lora.enabled": True, "training.bf16": True,
            "quantization.bnb_4bit_compute_dtype": "float16"}, "quantization.bnb_4bit_compute_dtype", "float16",
           severity="warning"),
    ],
    "_lora": [
        on({"lora.enabled": True, **SCRATCH}, "lora.enabled", "randomly initialised", severity="warning"),
        on({"lora.enabled": True, "lora.target_modules": []}, "lora.target_modules", "empty"),
        off({"lora.enabled": True, "lora.target_modules": ["q_proj"]}, "lora.target_modules", "empty"),
        on({"lora.enabled": True, "lora.use_dora": True, "quantization.load_in_8bit": True}, "lora.use_dora", "DoRA",
           severity="warning"),
    ],
    "_steps": [
        on({"training.max_steps": 0, "training.num_train_epochs": 0.0}, "training.max_steps", "neither"),
        off({"training.max_steps": 1, "training.num_train_epochs": 0.0}, "training.max_steps", "neither"),
        on({"training.warmup_steps": 1.0}, "training.warmup_steps", "must be below 1"),
        off({"training.warmup_steps": 0.99}, "training.warmup_steps", "must be below 1"),
        on({"training.warmup_steps": 0.31}, "training.warmup_steps", "warmup covers", severity="warning"),
        off({"training.warmup_steps": 0.3}, "training.warmup_steps", "warmup covers", severity="warning"),
        on({"training.max_steps": 10, "training.warmup_steps": 10}, "training.warmup_steps", "as long as the whole run"),
        off({"training.max_steps": 10, "training.warmup_steps": 9}, "training.warmup_steps", "as long as the whole run"),
        on({"training.num_train_epochs": 10.5}, "training.num_train_epochs", "overfit", severity="warning"),
        off({"training.num_train_epochs": 10.0}, "training.num_train_epochs", "overfit", severity="warning"),
    ],
    "_learning_rate": [
        on({"training.learning_rate": 1e-2}, "training.learning_rate", "very high", severity="warning"),
        off({"training.learning_rate": 0.0099, "lora.enabled": True}, "training.learning_rate", "very high",
            severity="warning"),
        on({"training.learning_rate": 0.0011}, "training.learning_rate", "full fine-tuning", severity="warning"),
        off({"training.learning_rate": 1e-3}, "training.learning_rate", "full fine-tuning", severity="warning"),
        on({"training.learning_rate": 0.0011, "lora.enabled": True}, "training.learning_rate", "high for LoRA",
           severity="warning"),
        on({"training.learning_rate": 9e-8}, "training.learning_rate", "barely change", severity="warning"),
        off({"training.learning_rate": 1e-7}, "training.learning_rate", "barely change", severity="warning"),
    ],
    "_evaluation": [
        on({"data.eval_path": "eval.jsonl", "data.eval_split": 0.1}, "data.eval_split", "both"),
        on({"training.eval_strategy": "steps"}, "training.eval_strategy", "no eval data"),
        off(EVAL, "training.eval_strategy", "no eval data"),
        on({"data.eval_split": 0.1}, "training.eval_strategy", "evaluation is off", severity="warning"),
        on({"training.load_best_model_at_end": True}, "training.load_best_model_at_end", "needs evaluation"),
        on({**BEST, "training.save_strategy": "epoch"}, "training.save_strategy", "evaluation schedule"),
        on({**BEST, "training.save_steps": 500, "training.eval_steps": 300}, "training.save_steps", "multiple"),
        off({**BEST, "training.save_steps": 500, "training.eval_steps": 250}, "training.save_steps", "multiple"),
        on({"training.early_stopping_patience": 1}, "training.early_stopping_patience", "needs evaluation"),
        on({**EVAL, "training.early_stopping_patience": 1}, "training.early_stopping_patience",
           "needs load_best_model_at_end"),
        off({**BEST, "training.early_stopping_patience": 1}, "training.early_stopping_patience",
            "needs load_best_model_at_end"),
        off({**EVAL, "training.early_stopping_patience": 0}, "training.early_stopping_patience",
            "needs load_best_model_at_end"),
        on({"training.save_strategy": "best"}, "training.save_strategy", "'best' needs evaluation"),
    ],
    "_data": [
        on({"data.packing": True, "data.padding": "max_length"}, "data.padding", "no effect", severity="warning"),
        on({**SCRATCH, "data.max_seq_length": 2049, "model.max_position_embeddings": 2048}, "data.max_seq_length",
           "longer than"),
        off({**SCRATCH, "data.max_seq_length": 2048, "model.max_position_embeddings": 2048}, "data.max_seq_length",
            "longer than"),
        on({"data.path": "  "}, "data.path", "no training data"),
    ],
    "_architecture": [
        on({**SCRATCH, "model.hidden_size": 768, "model.num_attention_heads": 7}, "model.num_attention_heads",
           "not divisible"),
        off({**SCRATCH, "model.hidden_size": 768, "model.num_attention_heads": 12, "model.num_key_value_heads": 4},
            "model.num_attention_heads", "not divisible"),
        on({**SCRATCH, "model.num_attention_heads": 12, "model.num_key_value_heads": 5}, "model.num_key_value_heads",
           "do not divide"),
        on({**SCRATCH, "model.model_type": "gpt2", "model.num_attention_heads": 12, "model.num_key_value_heads": 4},
           "model.num_key_value_heads", "grouped-query"),
        on({**SCRATCH, "model.hidden_dropout": 0.51}, "model.hidden_dropout", "dropout above 0.5", severity="warning"),
        off({**SCRATCH, "model.hidden_dropout": 0.5}, "model.hidden_dropout", "dropout above 0.5", severity="warning"),
    ],
    "_model": [
        on({"model.name_or_path": ""}, "model.name_or_path", "no model given"),
        off({"model.name_or_path": "", **SCRATCH}, "model.name_or_path", "no model given"),
        on({"model.trust_remote_code": True}, "model.trust_remote_code", "own Python code", severity="warning"),
        on({"model.attn_implementation": "flash_attention_2"}, "model.attn_implementation", "NVIDIA GPU",
           severity=None, context=CPU),
        on({"model.attn_implementation": "flash_attention_2"}, "model.attn_implementation", "bf16/fp16",
           severity="warning"),
        on({"training.weight_decay": 0.11}, "training.weight_decay", "strong", severity="warning"),
        off({"training.weight_decay": 0.1}, "training.weight_decay", "strong", severity="warning"),
        on({"training.max_grad_norm": 0.0}, "training.max_grad_norm", "clipping is off", severity="warning"),
    ],
    "_launch": [
        on({"launch.num_machines": 2}, "launch.main_process_ip", "address", context=CPU),  # launching here
        off({"launch.num_machines": 2}, "launch.main_process_ip", "address"),  # SLURM takes it from the allocation
        off({"launch.num_machines": 2}, "launch.main_process_ip", "address", context=NOTES),
        on({"launch.num_machines": 2, "launch.machine_rank": 2, "launch.main_process_ip": "10.0.0.1"},
           "launch.machine_rank", "out of range"),
        off({"launch.num_machines": 2, "launch.machine_rank": 1, "launch.main_process_ip": "10.0.0.1"},
            "launch.machine_rank", "out of range"),
        on({"launch.machine_rank": 1}, "launch.machine_rank", "out of range"),
        on({"launch.gpu_ids": "0,a"}, "launch.gpu_ids", "not a list of GPU indices"),
        on({"launch.gpu_ids": "0", "launch.num_processes": 2}, "launch.num_processes", "GPU id(s) listed"),
        off({"launch.gpu_ids": "0,1", "launch.num_processes": 2}, "launch.num_processes", "GPU id(s) listed"),
        on({"launch.gpu_ids": "0,2"}, "launch.gpu_ids", "does not exist", severity=None,
           context=Context(cuda_available=True, gpu_count=2)),
        on({"launch.num_processes": 2}, "launch.strategy", "plain data parallel", severity="warning"),
        on({"launch.strategy": "fsdp"}, "launch.strategy", "shards nothing", severity="warning"),
        on({"launch.num_processes": 3}, "launch.num_processes", "GPU(s) on this machine", severity=None,
           context=Context(cuda_available=True, gpu_count=2)),
        off({"launch.num_processes": 2}, "launch.num_processes", "GPU(s) on this machine", severity=None,
            context=Context(cuda_available=True, gpu_count=2)),
        on({"launch.strategy": "deepspeed", "launch.num_processes": 2}, "launch.strategy", "needs GPUs", severity=None,
           context=CPU),
    ],
    "_device": [
        on({"training.fp16": True, "launch.device": "cpu"}, "training.fp16", "launch.device is 'cpu'"),
        off({"training.fp16": True, "launch.device": "cuda"}, "training.fp16", "launch.device is 'cpu'"),
        on({"launch.strategy": "fsdp", "launch.device": "cpu"}, "launch.strategy", "launch.device is 'cpu'"),
        on({"launch.device": "cuda"}, "launch.device", "targets a CUDA GPU", context=CPU),
        off({"launch.device": "cuda"}, "launch.device", "targets a CUDA GPU",
            context=Context(cuda_available=True, gpu_count=1)),
        off({}, "launch.device", "targets a CUDA GPU", context=CPU),  # nothing GPU-only: the CPU is the target
        on({"training.bf16": True}, "launch.device", "targets a CUDA GPU", context=CPU),  # bf16 implies a GPU
        # Not launching here (editing, exporting, SLURM): what this machine lacks is a note, not an error.
        on({"training.fp16": True}, "training.fp16", "on this machine", severity="warning", context=NOTES),
        off({"training.fp16": True}, "training.fp16", "CUDA", severity="error", context=NOTES),
    ],
    "_generation": [
        on({"generation.prompts": ["Hi"], "generation.temperature": 0.0}, "generation.temperature", "temperature 0",
           severity="warning"),
        off({"generation.prompts": ["Hi"], "generation.temperature": 0.1}, "generation.temperature", "temperature 0",
            severity="warning"),
    ],
    "_values": [
        on({"data.path": "a\x1bb"}, "data.path", "control character"),
        on({"generation.prompts": ["a\x07"]}, "generation.prompts", "control character"),
        off({"generation.prompts": ["line one\nline two\tend"]}, "generation.prompts", "control character"),
        on({"model.name_or_path": "x" * 256}, "model.name_or_path", "at most 255 bytes"),
        off({"model.name_or_path": "x" * 255}, "model.name_or_path", "at most 255 bytes"),
        on({"data.path": "/".join(["p" * 200] * 20) + "/" + "q" * 76}, "data.path", "at most 4,095 bytes"),
        off({"data.path": "/".join(["p" * 200] * 20) + "/" + "q" * 75}, "data.path", "at most 4,095 bytes"),
        on({"training.output_dir": "/proc/x"}, "training.output_dir", "under /proc"),
        on({"training.output_dir": "/etc"}, "training.output_dir", "under /etc"),
        off({"training.output_dir": "/etcetera/runs"}, "training.output_dir", "under /etc"),
    ],
}


def config_with(values: dict[str, Any]) -> Config:
    data: dict[str, Any] = {}
    for key, value in values.items():
        section, name = key.split(".")
        data.setdefault(section, {})[name] = value
    return Config.model_validate(data, strict=True)


def matching(problems: list[Problem], case: Case) -> list[Problem]:
    return [p for p in problems if p.key == case.key and case.says in p.message
            and (case.severity is None or p.severity == case.severity)]


def test_every_rule_has_cases() -> None:
    names = {rule.__name__ for rule in validate.RULES}
    missing = names - set(RULE_CASES)
    assert not missing, f"rules without cases in RULE_CASES: {sorted(missing)}"
    for name, cases in RULE_CASES.items():
        assert name in names, f"RULE_CASES names a rule that no longer exists: {name}"
        assert any(c.present for c in cases), name


ALL = [(name, case) for name, cases in RULE_CASES.items() for case in cases]


@pytest.mark.parametrize("rule, case", ALL, ids=[f"{n}-{c.key}-{'on' if c.present else 'off'}-{i}"
                                                 for i, (n, c) in enumerate(ALL)])
def test_rule_at_its_edge(rule: str, case: Case) -> None:
    found = matching(check(config_with(case.values), case.context), case)
    if case.present:
        assert found, f"{rule}: {case.values} should give {case.key}: ...{case.says}..."
    else:
        assert not found, f"{rule}: {case.values} should not give {found[0].format()}"


def test_the_early_stopping_rule_is_what_refuses_a_run_without_load_best(tmp_path) -> None:
    """Through a real file: without load_best_model_at_end the preset does not validate, with it it does."""
    from runner import presets

    base = "[data]\neval_split = 0.1\n[training]\neval_strategy = 'steps'\nsave_strategy = 'steps'\n" \
           "eval_steps = 50\nsave_steps = 100\nearly_stopping_patience = 2\n"
    refused = tmp_path / "refused.toml"
    refused.write_text(base)
    (problem,) = presets.load(refused).errors
    assert problem.key == "training.early_stopping_patience" and problem.line == 8
    assert "load_best_model_at_end" in problem.hint
    accepted = tmp_path / "accepted.toml"
    accepted.write_text(base + "load_best_model_at_end = true\n")
    assert presets.load(accepted).ok
