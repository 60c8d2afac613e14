"""Axolotl YAML configs, read the way Axolotl itself reads them.

Defaults for absent keys and the derived values follow Axolotl's own code; each is cited where
it is applied (paths in the axolotl-ai-cloud/axolotl repository):
  schemas   src/axolotl/utils/schemas/config.py, training.py, peft.py, datasets.py (field defaults)
  normalize src/axolotl/utils/config/__init__.py (normalize_config: per-epoch counts -> step ratios)
  builder   src/axolotl/core/builders/base.py (TrainingArguments: save/eval strategy, scheduler,
            warmup, logging) and core/builders/causal.py (load_best_model_at_end)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._common import Imported, Mapper, Source, Unmapped, apply_datasets, as_list, deepspeed_file, fsdp_on, truthy

AX = "Axolotl"
SCHEDULERS = {"cosine", "linear", "constant", "constant_with_warmup", "polynomial", "inverse_sqrt", "cosine_with_min_lr",
              "cosine_with_restarts", "reduce_lr_on_plateau", "warmup_stable_decay"}
# Axolotl dataset `type` -> our data.format (src/axolotl/prompt_strategies/: alpaca, completion, chat_template)
DATASET_TYPES = {"alpaca": "instruction", "completion": "text", "chat_template": "chat", "sharegpt": "chat"}
# Axolotl's attention switches (older boolean flags and the newer attn_implementation), as transformers names.
ATTENTION = {"flash_attention_2": "flash_attention_2", "flash": "flash_attention_2", "fa2": "flash_attention_2",
             "sdpa": "sdpa", "eager": "eager"}
ATTENTION_FLAGS = {"flash_attention": "flash_attention_2", "sdp_attention": "sdpa", "eager_attention": "eager"}
# Optimizers Axolotl builds itself instead of transformers (src/axolotl/utils/schemas/enums.py CustomSupportedOptimizers).
CUSTOM_OPTIMIZERS = {"muon", "optimi_adamw", "ao_adamw_4bit", "ao_adamw_8bit", "ao_adamw_fp8", "adopt_adamw",
                     "came_pytorch", "dion"}


def convert(data: dict[str, Any], base: Path | None = None) -> Imported:
    result = Imported("Axolotl YAML")
    m = Mapper(data, result)
    _training_kind(m, result)
    _model(m, result)
    _adapter(m, result)
    _datasets(m, result)
    _batches_and_schedule(m, result)
    _checkpoints_and_eval(m, result)
    _launch(m)
    for key, reason in (("output_dir", "tunedeck creates its own run directory"),
                        ("dataset_prepared_path", "tunedeck tokenizes on the fly"),
                        ("base_model_config", "read from the model"), ("model_type", "read from the model's config.json"),
                        ("tokenizer_type", "read from the model"), ("hub_model_id", "not handled by tunedeck"),
                        ("hub_strategy", "not handled by tunedeck"),
                        ("resume_from_checkpoint", "use `tunedeck resume RUN`"), ("strict", "an Axolotl CLI switch"),
                        ("gradient_checkpointing_kwargs", "tunedeck uses non-reentrant checkpointing"),
                        ("dataset_processes", "tunedeck picks the tokenizer's worker count"),
                        ("dataset_num_proc", "tunedeck picks the tokenizer's worker count")):
        m.skip(key, reason)
    m.leftovers()
    return result


def _training_kind(m: Mapper, result: Imported) -> None:
    rl = m.get("rl")
    if rl:
        kind = str(rl).lower()
        result.refuse("rl", f"'{rl}' is preference/RL training ({kind.upper()}), which tunedeck does not do: it trains "
                      "with the causal-LM loss only", "plain supervised fine-tuning on the same data, which is NOT "
                      "what this config trains")
    for key, what in (("reward_model", "reward modelling"), ("process_reward_model", "process reward modelling")):
        if truthy(m.get(key, False)):
            result.refuse(key, f"{what} trains a scoring head, which tunedeck does not do",
                          "plain supervised fine-tuning of the language model")


def _model(m: Mapper, result: Imported) -> None:
    if m.has("base_model"):
        m.take("base_model", "model.name_or_path")
    else:
        result.refuse("base_model", "the config names no model, so tunedeck cannot tell what to train",
                      "tunedeck's tiny demo model (set model.name_or_path)")
    m.take("tokenizer_config", "model.tokenizer_name_or_path")
    m.take("trust_remote_code", "model.trust_remote_code", bool)
    attention = None
    for flag, impl in ATTENTION_FLAGS.items():
        if truthy(m.get(flag, False)) and attention is None:
            attention = (flag, impl)
    if m.has("attn_implementation"):
        value = str(m.get("attn_implementation"))
        if value in ATTENTION:
            attention = ("attn_implementation", ATTENTION[value])
        else:
            result.unmapped.append(Unmapped("attn_implementation", value, "tunedeck offers sdpa, eager and "
                                            "flash_attention_2; the model keeps sdpa (same results, other speed)"))
    if attention:
        flag, impl = attention
        m.set("model.attn_implementation", impl, None if flag == "attn_implementation" else f"{flag}: true")
    for key in ("xformers_attention", "flex_attention", "s2_attention"):
        if truthy(m.get(key, False)):
            result.unmapped.append(Unmapped(key, True, "not offered by tunedeck; sdpa gives the same results"))


def _adapter(m: Mapper, result: Imported) -> None:
    m.take("load_in_8bit", "quantization.load_in_8bit", bool)
    m.take("load_in_4bit", "quantization.load_in_4bit", bool)
    adapter = m.get("adapter")
    if adapter in ("lora", "qlora"):
        m.set("lora.enabled", True, f"adapter: {adapter}")
        if adapter == "qlora":
            # Axolotl's QLoRA loads NF4 with double quantisation (src/axolotl/loaders/model.py, BitsAndBytesConfig)
            why = "adapter: qlora means 4-bit NF4 loading with double quantisation in Axolotl (src/axolotl/loaders/model.py)"
            m.set("quantization.load_in_4bit", True, why)
            m.set("quantization.bnb_4bit_quant_type", "nf4", why)
            m.set("quantization.bnb_4bit_use_double_quant", True, why)
    elif adapter:
        result.refuse("adapter", f"'{adapter}' adapters are not supported (tunedeck trains LoRA, QLoRA or all weights)",
                      "a LoRA adapter with the same rank")
        m.set("lora.enabled", True, f"--lenient: '{adapter}' became LoRA")
    else:
        m.set("lora.enabled", False, "no adapter: Axolotl trains all weights")
    if not result.value("lora.enabled"):
        for key in ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "lora_target_linear"):
            m.skip(key, "no adapter in this config")
        return
    # peft's own defaults apply where Axolotl passes None through (peft/tuners/lora/config.py: r=8, lora_alpha=8)
    m.take("lora_r", "lora.r")
    m.default("lora.r", 8, "absent: Axolotl passes none, so peft's LoraConfig default r=8 applies")
    m.take("lora_alpha", "lora.lora_alpha")
    m.default("lora.lora_alpha", 8, "absent: peft's LoraConfig default lora_alpha=8 applies")
    m.take("lora_dropout", "lora.lora_dropout", float)
    m.default("lora.lora_dropout", 0.0, "absent: Axolotl's default lora_dropout 0.0 (src/axolotl/utils/schemas/peft.py)")
    if truthy(m.get("lora_target_linear", False)):
        m.set("lora.target_modules", "all-linear", "lora_target_linear: true")
        m.get("lora_target_modules")
    elif m.has("lora_target_modules"):
        m.take("lora_target_modules", "lora.target_modules", as_list)
    else:
        m.set("lora.target_modules", ["q_proj", "v_proj"], "absent: peft picks the model type's default targets, "
              "q_proj and v_proj for Llama/Mistral/Qwen2/Gemma (peft/utils/constants.py)")
    m.take("peft_use_dora", "lora.use_dora", bool)
    m.take("peft_use_rslora", "lora.use_rslora", bool)


def _datasets(m: Mapper, result: Imported) -> None:
    datasets = m.get("datasets") or []
    if not datasets:
        result.refuse("datasets", "the config names no training data", "tunedeck's demo data (set data.path)")
    elif not isinstance(datasets, list) or not all(isinstance(d, dict) for d in datasets):
        result.refuse("datasets", "expected a list of {path, type} tables", "tunedeck's demo data (set data.path)")
    else:
        apply_datasets(m, [_dataset(m, result, entry, f"datasets[{i}]") for i, entry in enumerate(datasets)],
                       "Axolotl's datasets")
    _chat_template(m, result)
    tests = m.get("test_datasets") or []
    if tests and isinstance(tests[0], dict) and tests[0].get("path"):
        m.seen.add("test_datasets")
        m.set("data.eval_path", str(tests[0]["path"]), "test_datasets[0].path")
    m.take("val_set_size", "data.eval_split", float)
    m.default("data.eval_split", 0.0, "absent: Axolotl's val_set_size 0.0, no held-out split (schemas/config.py)")
    m.take("sequence_len", "data.max_seq_length")
    m.default("data.max_seq_length", 512, "absent: Axolotl's default sequence_len 512 (src/axolotl/utils/schemas/config.py)")
    m.take("sample_packing", "data.packing", bool)
    m.default("data.packing", False, "absent: Axolotl does not pack by default (schemas/config.py)")
    if m.has("pad_to_sequence_len"):
        pad = truthy(m.get("pad_to_sequence_len")) and not truthy(m.source.get("sample_packing", False))
        m.set("data.padding", "max_length" if pad else "longest", "pad_to_sequence_len (packed rows are full already)")
    if m.has("train_on_inputs"):
        m.set("data.completion_only_loss", not truthy(m.get("train_on_inputs")), "train_on_inputs, inverted")
    else:
        m.set("data.completion_only_loss", True, "absent: Axolotl's train_on_inputs defaults to false, so prompts are "
              "masked (src/axolotl/utils/schemas/training.py)")


# Axolotl chat template names (src/axolotl/utils/schemas/enums.py ChatTemplate) -> tunedeck's built-in ones.
CHAT_TEMPLATES = {"tokenizer_default": "tokenizer", "chatml": "chatml", "llama3": "llama3", "mistral_v1": "mistral",
                  "mistral_v2v3": "mistral", "mistral_v3_tekken": "mistral", "gemma": "gemma", "qwen_25": "qwen",
                  "phi_3": "phi3", "zephyr": "zephyr", "alpaca": "alpaca"}


def _chat_template(m: Mapper, result: Imported) -> None:
    if not m.has("chat_template"):
        if result.value("data.format") == "chat":
            m.set("data.chat_template", "tokenizer", "absent: Axolotl renders chats with the tokenizer's own template "
                  "(tokenizer_default, prompt_strategies/chat_template.py)")
        return
    name = str(m.get("chat_template"))
    if name in CHAT_TEMPLATES:
        m.set("data.chat_template", CHAT_TEMPLATES[name], f"chat_template: {name}")
    elif name == "jinja":
        result.refuse("chat_template", "an inline Jinja chat template (chat_template_jinja)", "the tokenizer's own "
                      "template; save the Jinja text to a file and set data.chat_template to its path")
        m.skip("chat_template_jinja", "save it to a file and set data.chat_template to that path")
        m.set("data.chat_template", "tokenizer", "--lenient: the inline template became the tokenizer's")
    else:
        result.refuse("chat_template", f"chat template '{name}' is not one tunedeck has built in "
                      f"({', '.join(sorted(set(CHAT_TEMPLATES.values())))})", "the tokenizer's own template")
        m.set("data.chat_template", "tokenizer", f"--lenient: '{name}' became the tokenizer's template")


def _dataset(m: Mapper, result: Imported, entry: dict[str, Any], where: str) -> Source:
    """One Axolotl dataset entry as [data] fields (prompt_strategies/ and schemas/datasets.py defaults)."""
    source = Source()
    sub = Mapper(entry, result, prefix=f"{where}.")
    if sub.has("path"):
        source.put("path", str(sub.get("path")))
    if sub.has("split"):
        source.put("split", str(sub.get("split")))
    kind = sub.get("type")
    if isinstance(kind, dict):
        result.refuse(f"{where}.type", "a custom prompt format (a table of templates) has no tunedeck equivalent",
                      "the 'instruction' format with instruction/input/output columns")
        source.put("format", "instruction", "--lenient: the custom format became 'instruction'")
    elif kind in DATASET_TYPES:
        source.put("format", DATASET_TYPES[kind], f"{where}.type: {kind}")
    else:
        result.refuse(f"{where}.type", f"dataset type '{kind}' is not one tunedeck can render (it knows "
                      f"{', '.join(sorted(DATASET_TYPES))})", "the 'text' format on a 'text' column")
        source.put("format", "text", f"--lenient: dataset type '{kind}' became 'text'")
    if kind == "sharegpt":
        # ShareGPT rows: turns under 'conversations', each {from, value}, roles human/gpt (prompt_strategies/sharegpt.py)
        source.put("messages_field", str(sub.get("field_messages", "conversations")), "ShareGPT rows keep their turns "
                   "under 'conversations'" if "field_messages" not in entry else None)
        source.put("role_field", "from", "ShareGPT turns name the speaker in 'from'")
        source.put("content_field", "value", "ShareGPT turns keep the text in 'value'")
    elif kind == "chat_template":
        source.put("messages_field", str(sub.get("field_messages", "messages")), None if "field_messages" in entry
                   else "absent: Axolotl reads 'messages' (schemas/datasets.py)")
        mapping = sub.get("message_property_mappings") or {}
        role = mapping.get("role") or sub.get("message_field_role")
        content = mapping.get("content") or sub.get("message_field_content")
        if role:
            source.put("role_field", str(role), "the message key holding the role")
        if content:
            source.put("content_field", str(content), "the message key holding the text")
    if kind in ("chat_template", "sharegpt"):
        roles = sub.get("roles")
        if isinstance(roles, dict):  # {template role: [names in the data]}
            pairs = [f"{theirs}={ours}" for ours, names in roles.items() for theirs in as_list(names) if theirs != ours]
            m.set("data.role_map", pairs, f"{where}.roles")
        trained = sub.get("roles_to_train")
        if trained:
            m.set("data.roles_to_train", as_list(trained), f"{where}.roles_to_train")
        elif kind == "chat_template" and not truthy(m.source.get("train_on_inputs", False)):
            m.set("data.roles_to_train", ["assistant"], "absent: Axolotl trains assistant turns only "
                  "(prompt_strategies/chat_template.py)")
        if sub.has("chat_template"):
            name = str(sub.get("chat_template"))
            if name in CHAT_TEMPLATES:
                m.set("data.chat_template", CHAT_TEMPLATES[name], f"{where}.chat_template: {name}")
            else:
                result.refuse(f"{where}.chat_template", f"chat template '{name}' is not built into tunedeck",
                              "the tokenizer's own template")
        for key in ("message_property_mappings", "message_field_role", "message_field_content", "train_on_eos"):
            sub.get(key)
    if sub.has("field"):
        source.put("text_field", str(sub.get("field")))
    if kind == "alpaca":
        source.why["format"] = (f"{where}.type: alpaca; tunedeck's instruction prompt is Alpaca's without its "
                                "one-line preamble")
    sub.skip("ds_type", "tunedeck infers the file type from the extension")
    sub.skip("data_files", "point path at the file itself")
    sub.leftovers()
    return source


def _batches_and_schedule(m: Mapper, result: Imported) -> None:
    m.take("micro_batch_size", "training.per_device_train_batch_size")
    m.default("training.per_device_train_batch_size", 1, "absent: Axolotl's micro_batch_size 1 (schemas/training.py)")
    m.take("eval_batch_size", "training.per_device_eval_batch_size")
    m.default("training.per_device_eval_batch_size", result.value("training.per_device_train_batch_size"),
              "absent: Axolotl evaluates with micro_batch_size (normalize_config)")
    if m.has("gradient_accumulation_steps"):
        m.take("gradient_accumulation_steps", "training.gradient_accumulation_steps")
    elif m.has("batch_size"):
        micro = int(result.value("training.per_device_train_batch_size"))
        m.set("training.gradient_accumulation_steps", max(1, int(m.get("batch_size")) // micro),
              "batch_size // micro_batch_size, as Axolotl derives it (normalize_config)")
    else:
        m.default("training.gradient_accumulation_steps", 1, "absent: Axolotl's default 1 (schemas/training.py)")
    m.take("num_epochs", "training.num_train_epochs", float)
    m.default("training.num_train_epochs", 1.0, "absent: Axolotl's num_epochs 1 (schemas/training.py)")
    m.take("max_steps", "training.max_steps")
    if m.has("learning_rate"):
        m.take("learning_rate", "training.learning_rate", float)
    else:
        result.refuse("learning_rate", "the config has no learning_rate, which Axolotl requires "
                      "(src/axolotl/utils/schemas/training.py)", "the transformers default 5e-5")
    if m.has("lr_scheduler"):
        value = str(m.get("lr_scheduler"))
        if value in SCHEDULERS:
            m.set("training.lr_scheduler_type", value)
        else:
            result.refuse("lr_scheduler", f"'{value}' is a schedule Axolotl builds itself; transformers has no such "
                          "schedule", "cosine, which Axolotl uses under it")
            m.set("training.lr_scheduler_type", "cosine", f"--lenient: '{value}' became cosine")
    else:
        m.set("training.lr_scheduler_type", "cosine", "absent: Axolotl schedules cosine by default "
              "(core/builders/base.py _configure_scheduler)")
    if m.has("warmup_steps"):
        m.take("warmup_steps", "training.warmup_steps", int)
        m.get("warmup_ratio")
    elif m.has("warmup_ratio"):
        m.set("training.warmup_steps", float(m.get("warmup_ratio")), "warmup_ratio, as a fraction of all steps")
    else:
        m.set("training.warmup_steps", 0.03, "absent: Axolotl warms up over 3% of the steps, at most 100 steps "
              "(core/builders/base.py _configure_warmup_and_logging); the 100-step cap is not kept")
    m.take("weight_decay", "training.weight_decay", float)
    m.default("training.weight_decay", 0.0, "absent: Axolotl's weight_decay 0.0 (schemas/training.py)")
    optimizer = m.get("optimizer")
    if optimizer in CUSTOM_OPTIMIZERS:
        result.refuse("optimizer", f"'{optimizer}' is an optimizer Axolotl builds itself; transformers has none by "
                      "that name", "adamw_torch_fused")
        m.set("training.optim", "adamw_torch_fused", f"--lenient: '{optimizer}' became adamw_torch_fused")
    elif optimizer:
        m.set("training.optim", str(optimizer))
    else:
        m.set("training.optim", "adamw_torch_fused", "absent: Axolotl's default optimizer (schemas/training.py)")
    m.take("adam_beta1", "training.adam_beta1", float)
    m.take("adam_beta2", "training.adam_beta2", float)
    m.take("adam_epsilon", "training.adam_epsilon", float)
    m.take("max_grad_norm", "training.max_grad_norm", float)
    m.default("training.max_grad_norm", 1.0, "absent: Axolotl passes none, so transformers clips at 1.0")
    for flag in ("bf16", "fp16", "tf32"):
        if m.has(flag):
            value = m.get(flag)
            auto = isinstance(value, str) and value.strip().lower() == "auto"
            m.set(f"training.{flag}", truthy(value),
                  f"{flag}: auto means 'where the GPU supports it' in Axolotl (utils/config resolve_dtype); "
                  "turn it off for GPUs older than Ampere" if auto else None)
    gc = m.get("gradient_checkpointing")
    if gc in ("offload", "offload_disk") or truthy(m.get("activation_offloading", False)):
        m.set("training.gradient_checkpointing", True, f"gradient_checkpointing: {gc or 'true'} with activation "
              "offloading in Axolotl; tunedeck checkpoints but keeps the saved activations on the GPU (more GPU "
              "memory than the original, same results)")
    elif gc is not None:
        m.set("training.gradient_checkpointing", truthy(gc))
    else:
        m.set("training.gradient_checkpointing", False, "absent: Axolotl's default false (schemas/config.py)")
    m.take("seed", "training.seed")
    m.take("logging_steps", "training.logging_steps")
    m.default("training.logging_steps", 10, "absent: Axolotl logs every 0.5% of the steps, between 1 and 10 "
              "(core/builders/base.py); 10 here")
    if m.has("wandb_project"):
        m.set("training.report_to", "wandb", "wandb_project is set")
        m.skip("wandb_project", "set WANDB_PROJECT in the environment; wandb reads it")
    elif truthy(m.get("use_tensorboard", False)):
        m.set("training.report_to", "tensorboard", "use_tensorboard: true")
    for key in ("wandb_entity", "wandb_name", "wandb_run_id", "wandb_watch", "wandb_log_model", "wandb_mode"):
        m.skip(key, "set the matching WANDB_* environment variable")


# Axolotl schedules saving and evaluation alike: *_steps, else *s_per_epoch, else *_strategy, else its default.
# kind -> (strategy when none of them is set, why, what one event per epoch or fewer means)
_SCHEDULE_DEFAULTS = {
    "save": ("epoch", "absent: Axolotl saves at each epoch's end (core/builders/base.py)",
             "Axolotl sets no save_steps then and saves at each epoch's end (its default save_strategy, "
             "core/builders/base.py)"),
    "eval": ("no", "no eval_steps, evals_per_epoch or eval_strategy: Axolotl leaves transformers' default, "
                   "no evaluation", "once, at the end"),
}


def _schedule(m: Mapper, kind: str, epochs: float) -> None:
    """training.{kind}_strategy and {kind}_steps from Axolotl's {kind}_steps / {kind}s_per_epoch / {kind}_strategy."""
    steps, per_epoch, strategy = f"{kind}_steps", f"{kind}s_per_epoch", f"{kind}_strategy"
    absent, absent_why, at_most_once = _SCHEDULE_DEFAULTS[kind]
    if m.has(steps):
        m.set(f"training.{strategy}", "steps", f"{steps} is set")
        m.take(steps, f"training.{steps}")
        m.get(per_epoch)
        m.get(strategy)
    elif m.has(per_epoch) and int(m.source[per_epoch]) > 0:
        per = int(m.get(per_epoch))
        ratio = 1 / (per * epochs)
        if ratio < 1:
            # transformers reads a *_steps below 1 as that fraction of all optimizer steps, rounded up
            # (transformers/trainer_callback.py TrainerState.compute_steps): Axolotl's exact setting.
            m.set(f"training.{strategy}", "steps", f"{per_epoch}: {per} over {epochs:g} epoch(s)")
            m.set(f"training.{steps}", ratio, f"{per_epoch}: {per} x num_epochs: {epochs:g} -> every 1/{per * epochs:g} "
                  "of all steps (Axolotl normalize_config; below 1, transformers reads it as a fraction of the total)")
        else:
            m.set(f"training.{strategy}", "epoch", f"{per_epoch}: {per} over {epochs:g} epoch: {at_most_once}")
        m.get(strategy)
    elif m.has(strategy):
        m.take(strategy, f"training.{strategy}")
    else:
        m.set(f"training.{strategy}", absent, absent_why)


def _checkpoints_and_eval(m: Mapper, result: Imported) -> None:
    epochs = float(m.source.get("num_epochs") or 1)
    # Saving (normalize_config, then core/builders/base.py _configure_save_and_eval_strategy).
    _schedule(m, "save", epochs)
    m.take("save_total_limit", "training.save_total_limit")
    m.default("training.save_total_limit", 4, "absent: Axolotl keeps the last 4 checkpoints (core/builders/base.py)")
    # Evaluation: none without eval data; evals_per_epoch only counts when there is some.
    has_eval = float(m.source.get("val_set_size") or 0) > 0 or bool(m.source.get("test_datasets"))
    if not has_eval:
        m.set("training.eval_strategy", "no", "no val_set_size or test_datasets: Axolotl does not evaluate")
        for key in ("eval_steps", "evals_per_epoch", "eval_strategy"):
            m.skip(key, "no evaluation data in this config, so Axolotl never evaluates")
    else:
        _schedule(m, "eval", epochs)
    m.take("early_stopping_patience", "training.early_stopping_patience")
    m.take("metric_for_best_model", "training.metric_for_best_model", str)
    if m.has("load_best_model_at_end"):
        m.take("load_best_model_at_end", "training.load_best_model_at_end", bool)
    elif int(m.source.get("early_stopping_patience") or 0) > 0:
        m.set("training.load_best_model_at_end", True, "early_stopping_patience turns it on in Axolotl "
              "(core/builders/causal.py); early stopping needs it")


def _launch(m: Mapper) -> None:
    if m.has("deepspeed"):
        deepspeed_file(m, "deepspeed", m.get("deepspeed"), "Axolotl")
    if m.has("fsdp") or m.has("fsdp_config"):
        fsdp_on(m, "fsdp" if m.has("fsdp") else "fsdp_config", "Axolotl")
        m.skip("fsdp", "tunedeck generates its own FSDP settings")
        m.skip("fsdp_config", "tunedeck generates its own FSDP settings")
        m.skip("fsdp_version", "tunedeck uses FSDP 2")
