"""torchtune recipe YAML (lora_finetune_single_device, full_finetune_* recipes), where it maps."""

from __future__ import annotations

import re
from typing import Any

from ._common import Imported, Mapper, Unmapped

# torchtune model builders -> Hugging Face hub ids of the same weights.
MODELS = {
    "llama3_2_1b": "meta-llama/Llama-3.2-1B", "llama3_2_3b": "meta-llama/Llama-3.2-3B",
    "llama3_1_8b": "meta-llama/Llama-3.1-8B", "llama3_1_70b": "meta-llama/Llama-3.1-70B",
    "llama3_8b": "meta-llama/Meta-Llama-3-8B", "mistral_7b": "mistralai/Mistral-7B-v0.1",
    "qwen2_5_0_5b": "Qwen/Qwen2.5-0.5B", "qwen2_5_1_5b": "Qwen/Qwen2.5-1.5B", "qwen2_5_3b": "Qwen/Qwen2.5-3B",
    "qwen2_5_7b": "Qwen/Qwen2.5-7B", "gemma2_2b": "google/gemma-2-2b", "gemma2_9b": "google/gemma-2-9b",
    "phi3_mini": "microsoft/Phi-3-mini-4k-instruct",
}
ATTN_MODULES = {"q_proj": "q_proj", "k_proj": "k_proj", "v_proj": "v_proj", "output_proj": "o_proj"}
MLP_MODULES = ["gate_proj", "up_proj", "down_proj"]
DATASETS = {"alpaca": "instruction", "chat": "chat", "text_completion": "text", "instruct": "instruction", "slimorca": "chat"}
SCHEDULERS = {"get_cosine_schedule_with_warmup": "cosine", "get_linear_schedule_with_warmup": "linear"}
OPTIMIZERS = {"torch.optim.AdamW": "adamw_torch", "torch.optim.SGD": "sgd", "bitsandbytes.optim.PagedAdamW8bit": "paged_adamw_8bit",
              "bitsandbytes.optim.AdamW8bit": "adamw_bnb_8bit", "bitsandbytes.optim.PagedAdamW": "paged_adamw_32bit"}


def _component(value: Any) -> str:
    return value.get("_component_", "") if isinstance(value, dict) else ""


def convert(data: dict[str, Any]) -> Imported:
    result = Imported("torchtune recipe YAML")
    m = Mapper(data, result)
    model = m.get("model") or {}
    builder = _component(model).rsplit(".", 1)[-1]
    lora = builder.startswith(("lora_", "qlora_"))
    base = re.sub(r"^q?lora_", "", builder)
    if base in MODELS:
        m.set("model.name_or_path", MODELS[base])
    elif builder:
        result.unmapped.append(Unmapped("model._component_", _component(model), "unknown model builder: set model.name_or_path"))
    m.set("lora.enabled", lora)
    if builder.startswith("qlora_"):
        m.set("quantization.load_in_4bit", True)
        m.set("quantization.bnb_4bit_quant_type", "nf4")
        result.notes.append("torchtune's QLoRA (NF4) became bitsandbytes 4-bit NF4 loading")
    if isinstance(model, dict):
        sub = Mapper(model, result, prefix="model.")
        sub.get("_component_")
        sub.take("lora_rank", "lora.r")
        sub.take("lora_alpha", "lora.lora_alpha")
        sub.take("lora_dropout", "lora.lora_dropout", float)
        modules = [ATTN_MODULES.get(x, x) for x in sub.get("lora_attn_modules", [])]
        if sub.get("apply_lora_to_mlp", False):
            modules += MLP_MODULES
        if modules:
            m.set("lora.target_modules", modules)
        sub.skip("apply_lora_to_output", "tunedeck does not put adapters on the output head")
        sub.take("use_dora", "lora.use_dora", bool)
        sub.leftovers()
    dataset = m.get("dataset") or {}
    if isinstance(dataset, dict):
        sub = Mapper(dataset, result, prefix="dataset.")
        kind = _component(dataset).rsplit(".", 1)[-1].replace("_dataset", "")
        sub.get("_component_")
        if kind in DATASETS:
            m.set("data.format", DATASETS[kind])
        sub.take("source", "data.path")
        sub.take("data_files", "data.path")
        sub.take("split", "data.split")
        sub.take("packed", "data.packing", bool)
        if sub.has("train_on_input"):
            m.set("data.completion_only_loss", not sub.get("train_on_input"))
        sub.leftovers()
    tokenizer = m.get("tokenizer") or {}
    if isinstance(tokenizer, dict):
        sub = Mapper(tokenizer, result, prefix="tokenizer.")
        sub.get("_component_")
        sub.take("max_seq_len", "data.max_seq_length")
        sub.skip("path", "tunedeck loads the tokenizer with the model")
        sub.leftovers()
    m.take("seed", "training.seed")
    m.take("batch_size", "training.per_device_train_batch_size")
    m.take("epochs", "training.num_train_epochs", float)
    m.take("gradient_accumulation_steps", "training.gradient_accumulation_steps")
    m.take("clip_grad_norm", "training.max_grad_norm", float)
    m.take("enable_activation_checkpointing", "training.gradient_checkpointing", bool)
    m.take("log_every_n_steps", "training.logging_steps")
    dtype = m.get("dtype")
    if dtype in ("bf16", "fp16"):
        m.set(f"training.{dtype}", True)
    elif dtype not in (None, "fp32"):
        result.unmapped.append(Unmapped("dtype", dtype, "expected bf16, fp16 or fp32"))
    optimizer = m.get("optimizer") or {}
    if isinstance(optimizer, dict):
        sub = Mapper(optimizer, result, prefix="optimizer.")
        name = sub.get("_component_") or ""
        if name in OPTIMIZERS:
            fused = sub.get("fused", False)
            m.set("training.optim", "adamw_torch_fused" if fused and OPTIMIZERS[name] == "adamw_torch" else OPTIMIZERS[name])
        elif name:
            result.unmapped.append(Unmapped("optimizer._component_", name, "no matching transformers optim"))
        sub.take("lr", "training.learning_rate", float)
        sub.take("weight_decay", "training.weight_decay", float)
        if sub.has("betas"):
            beta1, beta2 = sub.get("betas")
            m.set("training.adam_beta1", float(beta1))
            m.set("training.adam_beta2", float(beta2))
        sub.take("eps", "training.adam_epsilon", float)
        sub.get("fused")
        sub.leftovers()
    scheduler = m.get("lr_scheduler") or {}
    if isinstance(scheduler, dict):
        sub = Mapper(scheduler, result, prefix="lr_scheduler.")
        name = (sub.get("_component_") or "").rsplit(".", 1)[-1]
        if name in SCHEDULERS:
            m.set("training.lr_scheduler_type", SCHEDULERS[name])
        elif name:
            result.unmapped.append(Unmapped("lr_scheduler._component_", name, "no matching transformers scheduler"))
        sub.take("num_warmup_steps", "training.warmup_steps", int)
        sub.leftovers()
    if m.has("max_steps_per_epoch"):
        m.skip("max_steps_per_epoch", "tunedeck caps the whole run instead: set training.max_steps")
    for key, reason in (("output_dir", "tunedeck creates its own run directory"), ("checkpointer", "tunedeck loads weights by hub id or path"),
                        ("resume_from_checkpoint", "use `tunedeck resume RUN`"), ("device", "chosen by accelerate"),
                        ("loss", "tunedeck uses the model's causal-LM loss"), ("metric_logger", "set training.report_to"),
                        ("shuffle", "tunedeck always shuffles training data"), ("compile", "no tunedeck equivalent"),
                        ("profiler", "no tunedeck equivalent"), ("log_peak_memory_stats", "tunedeck always logs GPU memory")):
        m.skip(key, reason)
    m.leftovers()
    return result
