"""transformers `TrainingArguments` JSON (training_args.json) and `trainer_state.json` of a past run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.schema import FIELDS

from ._common import Imported, Mapper, deepspeed_file, fsdp_on, transformers_defaults

TRAINING_KEYS = {spec.name for spec in FIELDS if spec.section == "training"}
# Names transformers used before version 5, and what they mean now.
RENAMED = {"evaluation_strategy": "eval_strategy"}
# Arguments that describe the machine or the bookkeeping of one run, not the recipe.
RUN_LOCAL = {
    "output_dir": "tunedeck creates its own run directory under training.output_dir",
    "logging_dir": "tensorboard logs live inside the run directory",
    "overwrite_output_dir": "every tunedeck run gets a fresh directory",
    "local_rank": "set by accelerate at launch",
    "resume_from_checkpoint": "use `tunedeck resume RUN`",
    "push_to_hub": "not handled by tunedeck", "hub_model_id": "not handled by tunedeck",
    "hub_token": "secrets are never imported",
    "do_train": "implied", "do_eval": "implied by eval_strategy", "do_predict": "not handled by tunedeck",
    "run_name": "tunedeck names runs after the preset",
}
# Arguments tunedeck sets the same way for every run (runner/training_args.py), so nothing to import.
for _key in ("logging_strategy", "logging_nan_inf_filter", "disable_tqdm", "use_cpu", "include_num_input_tokens_seen",
             "remove_unused_columns", "ddp_find_unused_parameters", "dataloader_num_workers",
             "activation_checkpointing_kwargs"):
    RUN_LOCAL.setdefault(_key, "tunedeck sets this itself for every run")


def convert_training_args(data: dict[str, Any], base: Path | None = None) -> Imported:
    result = Imported("transformers TrainingArguments JSON")
    m = Mapper(data, result)
    for key in list(data):
        target = RENAMED.get(key, key)
        if key in RUN_LOCAL:
            m.skip(key, RUN_LOCAL[key])
        elif target in TRAINING_KEYS and target not in ("output_dir",):
            m.take(key, f"training.{target}", _normalise(target))
    if m.has("warmup_ratio") and float(m.source["warmup_ratio"]) > 0:
        m.set("training.warmup_steps", float(m.get("warmup_ratio")), "warmup_ratio, as the fraction of all steps "
              "transformers 5 reads in a warmup_steps below 1")
    else:
        m.get("warmup_ratio")
    if m.has("gradient_checkpointing") or m.has("activation_checkpointing"):
        on = any([bool(m.get("gradient_checkpointing")), bool(m.get("activation_checkpointing"))])  # the v5 name too
        m.set("training.gradient_checkpointing", on)
    if result.raw.get("training", {}).get("eval_strategy", "no") != "no":
        m.set("data.eval_split", 0.05, "the original run evaluated on an eval set this file does not name; 5% of "
              "the training data is held out unless you set data.eval_path")
    if m.has("fsdp") and m.source["fsdp"] not in ("", [], None, False):
        fsdp_on(m, "fsdp", "TrainingArguments")
        m.skip("fsdp_config", "tunedeck generates its own FSDP settings")
    if m.has("deepspeed") and m.source["deepspeed"]:
        deepspeed_file(m, "deepspeed", m.get("deepspeed"), "TrainingArguments")
    transformers_defaults(m, "TrainingArguments")
    m.leftovers()
    return result


# The arguments trainer_state.json records, and the fields they become.
TRAINER_STATE_KEYS = (
    ("train_batch_size", "training.per_device_train_batch_size"),
    ("num_train_epochs", "training.num_train_epochs", float),
    ("max_steps", "training.max_steps"),
    ("logging_steps", "training.logging_steps"),
    ("save_steps", "training.save_steps"),
    ("eval_steps", "training.eval_steps"),
)


def convert_trainer_state(data: dict[str, Any], base: Path | None = None) -> Imported:
    """trainer_state.json keeps only a few arguments; the rest of the run is in training_args.bin."""
    result = Imported("transformers trainer_state.json")
    m = Mapper(data, result)
    m.take_each(TRAINER_STATE_KEYS)
    for key, reason in (("log_history", "metrics of the past run (loss curve), not settings"),
                        ("best_model_checkpoint", "a path of the past run"), ("best_metric", "a result, not a setting"),
                        ("global_step", "progress of the past run"), ("epoch", "progress of the past run"),
                        ("total_flos", "a result, not a setting"), ("trial_name", "hyperparameter search bookkeeping"),
                        ("trial_params", "hyperparameter search bookkeeping"), ("stateful_callbacks", "callback state of the past run"),
                        ("is_hyper_param_search", "hyperparameter search bookkeeping"), ("is_local_process_zero", "runtime state"),
                        ("is_world_process_zero", "runtime state"), ("best_global_step", "progress of the past run")):
        m.skip(key, reason)
    result.notes.append("trainer_state.json records only batch size, epochs and step intervals; import training_args.json "
                        "(transformers writes it as training_args.bin; dump it with `TrainingArguments.to_json_string()`) "
                        "for the full recipe")
    m.leftovers()
    return result


def _normalise(name: str):
    def convert(value: Any) -> Any:
        if name == "report_to":
            values = value if isinstance(value, list) else [value]
            values = [v for v in values if v not in ("none", None)]
            return values[0] if values and values[0] in ("tensorboard", "wandb") else "none"
        if name in ("save_total_limit",) and value is None:
            return 0
        if name == "tf32":
            return bool(value)
        if name == "lr_scheduler_type" and isinstance(value, str) and "." in value:
            return value.split(".")[-1].lower()  # "SchedulerType.COSINE" in older dumps
        if name in ("eval_strategy", "save_strategy") and isinstance(value, str) and "." in value:
            return value.split(".")[-1].lower()
        if name == "optim" and isinstance(value, str) and "." in value:
            return value.split(".")[-1].lower()
        return value
    return convert
