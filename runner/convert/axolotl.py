"""Axolotl YAML configs (https://docs.axolotl.ai config reference keys)."""

from __future__ import annotations

from typing import Any

from ._common import Imported, Mapper, as_list, truthy

SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant", "constant_with_warmup": "constant_with_warmup",
              "polynomial": "polynomial", "inverse_sqrt": "inverse_sqrt", "cosine_with_min_lr": "cosine_with_min_lr",
              "cosine_with_restarts": "cosine_with_restarts", "reduce_lr_on_plateau": "reduce_lr_on_plateau"}
# Axolotl dataset `type` -> our data.format
DATASET_TYPES = {"alpaca": "instruction", "completion": "text", "chat_template": "chat", "sharegpt": "chat"}


def convert(data: dict[str, Any]) -> Imported:
    result = Imported("Axolotl YAML")
    m = Mapper(data, result)
    m.take("base_model", "model.name_or_path")
    m.take("tokenizer_config", "model.tokenizer_name_or_path")
    m.take("trust_remote_code", "model.trust_remote_code", bool)
    m.take("load_in_4bit", "quantization.load_in_4bit", bool)
    m.take("load_in_8bit", "quantization.load_in_8bit", bool)
    adapter = m.get("adapter")
    if adapter in ("lora", "qlora"):
        m.set("lora.enabled", True)
        if adapter == "qlora":
            m.set("quantization.load_in_4bit", True)
            m.set("quantization.bnb_4bit_quant_type", "nf4")
            m.set("quantization.bnb_4bit_use_double_quant", True)
            result.notes.append("adapter: qlora became 4-bit NF4 loading with double quantisation, as Axolotl does")
    elif adapter:
        result.unmapped.append(_un("adapter", adapter, "only lora and qlora adapters are supported"))
    m.take("lora_r", "lora.r")
    m.take("lora_alpha", "lora.lora_alpha")
    m.take("lora_dropout", "lora.lora_dropout", float)
    if truthy(m.get("lora_target_linear", False)):
        m.set("lora.target_modules", "all-linear")
        m.get("lora_target_modules")
    else:
        m.take("lora_target_modules", "lora.target_modules", as_list)
    m.take("peft_use_dora", "lora.use_dora", bool)
    m.take("peft_use_rslora", "lora.use_rslora", bool)
    _datasets(m, result)
    m.take("val_set_size", "data.eval_split", float)
    m.take("sequence_len", "data.max_seq_length")
    m.take("sample_packing", "data.packing", bool)
    if m.has("pad_to_sequence_len"):
        pad = truthy(m.get("pad_to_sequence_len")) and not truthy(data.get("sample_packing", False))
        m.set("data.padding", "max_length" if pad else "longest")  # packed rows are full already
    if m.has("train_on_inputs"):
        m.set("data.completion_only_loss", not truthy(m.get("train_on_inputs")))
    m.take("micro_batch_size", "training.per_device_train_batch_size")
    m.take("eval_batch_size", "training.per_device_eval_batch_size")
    m.take("gradient_accumulation_steps", "training.gradient_accumulation_steps")
    m.take("num_epochs", "training.num_train_epochs", float)
    m.take("max_steps", "training.max_steps")
    m.take("learning_rate", "training.learning_rate", float)
    if m.has("lr_scheduler"):
        value = m.get("lr_scheduler")
        if value in SCHEDULERS:
            m.set("training.lr_scheduler_type", SCHEDULERS[value])
        else:
            result.unmapped.append(_un("lr_scheduler", value, "no matching transformers scheduler"))
    if m.has("warmup_ratio"):
        m.set("training.warmup_steps", float(m.get("warmup_ratio")))
    m.take("warmup_steps", "training.warmup_steps", int)
    m.take("weight_decay", "training.weight_decay", float)
    m.take("optimizer", "training.optim")
    m.take("adam_beta1", "training.adam_beta1", float)
    m.take("adam_beta2", "training.adam_beta2", float)
    m.take("adam_epsilon", "training.adam_epsilon", float)
    m.take("max_grad_norm", "training.max_grad_norm", float)
    for flag in ("bf16", "fp16", "tf32"):
        if m.has(flag):
            m.set(f"training.{flag}", truthy(m.get(flag)))  # Axolotl accepts "auto"; tunedeck wants a decision
    m.take("gradient_checkpointing", "training.gradient_checkpointing", truthy)
    m.take("seed", "training.seed")
    m.take("save_steps", "training.save_steps")
    m.take("save_total_limit", "training.save_total_limit")
    m.take("save_strategy", "training.save_strategy")
    m.take("eval_steps", "training.eval_steps")
    m.take("eval_strategy", "training.eval_strategy")
    epochs = float(data.get("num_epochs") or 1)
    for per_epoch, prefix in (("evals_per_epoch", "eval"), ("saves_per_epoch", "save")):
        if m.has(per_epoch) and int(m.source[per_epoch]) > 0:
            # transformers reads an interval below 1 as a fraction of all steps: n per epoch over all epochs.
            m.set(f"training.{prefix}_steps", 1 / (int(m.get(per_epoch)) * epochs))
            m.set(f"training.{prefix}_strategy", "steps")
    has_eval_data = float(data.get("val_set_size") or 0) > 0
    if not has_eval_data:
        result.raw.get("training", {}).pop("eval_strategy", None)  # Axolotl skips evaluation without a validation set
    elif (m.has("eval_steps")) and "eval_strategy" not in result.raw.get("training", {}):
        m.set("training.eval_strategy", "steps")
    m.take("logging_steps", "training.logging_steps")
    m.take("early_stopping_patience", "training.early_stopping_patience")
    m.take("load_best_model_at_end", "training.load_best_model_at_end", bool)
    if truthy(m.get("flash_attention", False)):
        m.set("model.attn_implementation", "flash_attention_2")
    elif truthy(m.get("sdp_attention", False)):
        m.set("model.attn_implementation", "sdpa")
    if m.has("wandb_project"):
        m.set("training.report_to", "wandb")
        m.skip("wandb_project", "set WANDB_PROJECT in the environment; wandb reads it")
    for key in ("wandb_entity", "wandb_name", "wandb_run_id", "wandb_watch", "wandb_log_model"):
        m.skip(key, "set the matching WANDB_* environment variable")
    if m.has("deepspeed"):
        m.skip("deepspeed", "set launch.strategy = 'deepspeed' and launch.zero_stage to match this file")
    if m.has("fsdp") or m.has("fsdp_config"):
        m.set("launch.strategy", "fsdp")
        m.skip("fsdp", "tunedeck generates its own FSDP settings")
        m.skip("fsdp_config", "tunedeck generates its own FSDP settings")
    for key, reason in (("output_dir", "tunedeck creates its own run directory"),
                        ("dataset_prepared_path", "tunedeck tokenizes on the fly"),
                        ("base_model_config", "read from the model"), ("model_type", "read from the model's config.json"),
                        ("tokenizer_type", "read from the model"), ("hub_model_id", "not handled by tunedeck"),
                        ("resume_from_checkpoint", "use `tunedeck resume RUN`")):
        m.skip(key, reason)
    m.leftovers()
    return result


def _datasets(m: Mapper, result: Imported) -> None:
    datasets = m.get("datasets") or []
    if not datasets:
        return
    first = datasets[0]
    if not isinstance(first, dict):
        result.unmapped.append(_un("datasets", datasets, "expected a list of {path, type} tables"))
        return
    sub = Mapper(first, result, prefix="datasets[0].")
    sub.take("path", "data.path")
    sub.take("split", "data.split")
    kind = sub.get("type")
    if kind in DATASET_TYPES:
        m.set("data.format", DATASET_TYPES[kind])
    elif kind:
        result.unmapped.append(_un("datasets[0].type", kind, "no matching tunedeck data.format"))
    sub.take("field_messages", "data.messages_field")
    sub.take("field", "data.text_field")
    sub.skip("ds_type", "tunedeck infers the file type from the extension")
    sub.leftovers()
    for index, extra in enumerate(datasets[1:], start=1):
        result.unmapped.append(_un(f"datasets[{index}]", extra, "tunedeck trains on one dataset; merge the files first"))


def _un(key: str, value: Any, reason: str):
    from ._common import Unmapped

    return Unmapped(key, value, reason)
