"""The schema: field names match the HF ecosystem, defaults are sane, every field is explained."""

from __future__ import annotations

import dataclasses
import json

import pytest

from runner.schema import FIELDS, FIELDS_BY_KEY, GROUPS, Config, applies, json_schema
from tests.conftest import imported_heavy_modules

# Every hyperparameter the reference notes (shared/reference) discuss, by our field name.
FIELDS_NAMED_IN_NOTES = [
    "training.per_device_train_batch_size", "training.per_device_eval_batch_size",
    "training.gradient_accumulation_steps", "training.num_train_epochs", "training.max_steps",
    "training.learning_rate", "training.lr_scheduler_type", "training.warmup_steps", "training.weight_decay",
    "training.adam_beta1", "training.adam_beta2", "training.adam_epsilon", "training.optim",
    "training.max_grad_norm", "training.fp16", "training.bf16", "training.gradient_checkpointing",
    "training.save_total_limit", "training.save_steps", "training.eval_strategy", "training.eval_steps",
    "training.load_best_model_at_end", "training.metric_for_best_model", "training.early_stopping_patience",
    "training.logging_steps", "training.report_to", "model.dtype", "model.name_or_path", "model.model_type",
    "model.num_hidden_layers", "model.hidden_size", "model.intermediate_size", "model.hidden_dropout",
    "model.attention_dropout", "data.max_seq_length", "data.padding", "data.truncation",
    "generation.temperature", "generation.top_p", "generation.top_k", "launch.strategy", "launch.num_processes",
]


@pytest.mark.parametrize("key", FIELDS_NAMED_IN_NOTES)
def test_fields_from_reference_notes_are_fully_explained(key: str) -> None:
    spec = FIELDS_BY_KEY[key]
    for part in ("what", "up", "down"):
        assert len(getattr(spec.help, part).strip()) > 10, f"{key}: help '{part}' is missing"
    assert spec.help.typical.strip(), f"{key}: typical values are missing"


def test_every_field_has_help_a_label_and_a_known_group() -> None:
    for spec in FIELDS:
        assert spec.help.what.strip() and spec.help.typical.strip(), spec.key
        if spec.kind not in ("str",):  # free-text fields (paths, column names) have no raise/lower
            assert spec.help.up.strip() and spec.help.down.strip(), spec.key
        assert spec.label and spec.group in GROUPS, spec.key


def test_context_dependent_advice_where_the_notes_give_one() -> None:
    assert "dataset" in FIELDS_BY_KEY["training.weight_decay"].help.advice
    assert "dataset" in FIELDS_BY_KEY["training.logging_steps"].help.advice
    assert "model" in FIELDS_BY_KEY["training.learning_rate"].help.advice


def test_every_editor_group_has_fields() -> None:
    assert {spec.group for spec in FIELDS} == set(GROUPS)


def test_training_fields_are_transformers_training_arguments_with_their_defaults() -> None:
    from transformers import TrainingArguments

    hf = {f.name: f for f in dataclasses.fields(TrainingArguments)}
    ours_only = {"early_stopping_patience", "early_stopping_threshold"}  # EarlyStoppingCallback arguments
    # Deliberate differences from transformers' defaults, each for a reason stated in the schema's help.
    differs = {"logging_steps": 10, "output_dir": "", "save_total_limit": 0, "metric_for_best_model": "eval_loss",
               "tf32": False, "gradient_checkpointing": False, "eval_steps": 500}  # TOML has no null
    for spec in (s for s in FIELDS if s.section == "training"):
        if spec.name in ours_only:
            continue
        assert spec.name in hf, f"training.{spec.name} is not a TrainingArguments field"
        expected = differs.get(spec.name, hf[spec.name].default)
        assert spec.default == expected, f"training.{spec.name}: {spec.default!r} != {expected!r}"


def test_choices_match_transformers_5() -> None:
    from transformers.trainer_utils import SchedulerType
    from transformers.training_args import OptimizerNames

    assert set(FIELDS_BY_KEY["training.lr_scheduler_type"].choices) == {s.value for s in SchedulerType}
    assert set(FIELDS_BY_KEY["training.optim"].choices) == {o.value for o in OptimizerNames}


def test_lora_and_quantization_names_match_peft_and_bitsandbytes_config() -> None:
    from peft import LoraConfig
    from transformers import BitsAndBytesConfig

    lora_fields = {f.name for f in dataclasses.fields(LoraConfig)}
    for spec in (s for s in FIELDS if s.section == "lora" and s.name not in ("enabled", "merge_after_training")):
        assert spec.name in lora_fields, spec.key
    bnb_args = set(BitsAndBytesConfig.__init__.__code__.co_varnames)
    for spec in (s for s in FIELDS if s.section == "quantization"):
        assert spec.name in bnb_args, spec.key


def test_defaults_build_a_valid_config_and_limits_are_enforced() -> None:
    config = Config()
    assert config.training.learning_rate == 5e-5 and config.lora.target_modules == "all-linear"
    assert config.model.trust_remote_code is False
    with pytest.raises(ValueError):
        Config.model_validate({"training": {"per_device_train_batch_size": 0}})
    with pytest.raises(ValueError):
        Config.model_validate({"lora": {"bias": "some"}})


def test_warmup_accepts_a_ratio_or_a_step_count() -> None:
    assert Config.model_validate({"training": {"warmup_steps": 0.05}}).training.warmup_steps == 0.05
    steps = Config.model_validate({"training": {"warmup_steps": 100}}).training.warmup_steps
    assert steps == 100 and isinstance(steps, int)


def test_applies_conditions() -> None:
    config = Config()
    assert not applies(FIELDS_BY_KEY["lora.r"], config)
    assert not applies(FIELDS_BY_KEY["model.hidden_size"], config)
    assert not applies(FIELDS_BY_KEY["launch.zero_stage"], config)
    config.lora.enabled = True
    config.model.from_scratch = True
    config.launch.strategy = "deepspeed"
    assert applies(FIELDS_BY_KEY["lora.r"], config)
    assert applies(FIELDS_BY_KEY["model.hidden_size"], config)
    assert applies(FIELDS_BY_KEY["launch.zero_stage"], config)


def test_json_schema_describes_every_field_and_rejects_unknown_keys() -> None:
    schema = json_schema()
    json.dumps(schema)  # serialisable
    assert schema["additionalProperties"] is False
    training = schema["$defs"]["TrainingSection"]
    assert training["additionalProperties"] is False
    assert "Raise:" in training["properties"]["learning_rate"]["markdownDescription"]
    total = sum(len(d["properties"]) for name, d in schema["$defs"].items() if name.endswith("Section"))
    assert total == len(FIELDS)


def test_schema_and_cli_modules_import_no_heavy_ml_library() -> None:
    code = "import runner.schema, runner.presets, runner.validate, runner.derived, runner.cli, tui.cli; runner.cli.build_parser()"
    assert imported_heavy_modules(code) == []
