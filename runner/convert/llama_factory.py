"""LLaMA-Factory training YAML (`llamafactory-cli train config.yaml`)."""

from __future__ import annotations

from typing import Any

from ._common import Imported, Mapper, Unmapped, as_list, truthy
from .hf_args import TRAINING_KEYS

ATTENTION = {"fa2": "flash_attention_2", "sdpa": "sdpa", "disabled": "eager"}


def convert(data: dict[str, Any]) -> Imported:
    result = Imported("LLaMA-Factory YAML")
    m = Mapper(data, result)
    m.take("model_name_or_path", "model.name_or_path")
    m.take("trust_remote_code", "model.trust_remote_code", bool)
    stage = m.get("stage", "sft")
    if stage not in ("sft", "pt"):
        result.unmapped.append(Unmapped("stage", stage, "tunedeck trains causal LMs (sft or pt); RLHF stages are not supported"))
    kind = m.get("finetuning_type", "lora")
    if kind == "lora":
        m.set("lora.enabled", True)
    elif kind == "full":
        m.set("lora.enabled", False)
    else:
        result.unmapped.append(Unmapped("finetuning_type", kind, "only lora and full fine-tuning are supported"))
    m.take("lora_rank", "lora.r")
    m.take("lora_alpha", "lora.lora_alpha")
    m.take("lora_dropout", "lora.lora_dropout", float)
    if m.has("lora_target"):
        modules = as_list(m.get("lora_target"))
        m.set("lora.target_modules", "all-linear" if modules == ["all"] else modules)
    m.take("use_dora", "lora.use_dora", bool)
    m.take("use_rslora", "lora.use_rslora", bool)
    bits = m.get("quantization_bit")
    if bits in (4, 8):
        m.set(f"quantization.load_in_{bits}bit", True)
    elif bits is not None:
        result.unmapped.append(Unmapped("quantization_bit", bits, "only 4 and 8 bits (bitsandbytes) are supported"))
    method = m.get("quantization_method", "bitsandbytes")
    if method not in ("bitsandbytes", "bnb"):
        result.unmapped.append(Unmapped("quantization_method", method, "only bitsandbytes quantization is supported"))
    m.take("quantization_type", "quantization.bnb_4bit_quant_type")
    m.take("double_quantization", "quantization.bnb_4bit_use_double_quant", bool)
    if m.has("dataset"):
        names = as_list(m.get("dataset"))
        m.set("data.path", names[0])
        if len(names) > 1:
            result.unmapped.append(Unmapped("dataset", ",".join(names[1:]), "tunedeck trains on one dataset"))
        result.notes.append("LLaMA-Factory dataset names refer to its dataset_info.json; point data.path at the file itself")
    if m.has("template"):
        m.set("data.format", "chat" if stage == "sft" else "text")
        m.skip("template", "tunedeck uses the tokenizer's own chat template")
    elif stage == "pt":
        m.set("data.format", "text")
    m.take("cutoff_len", "data.max_seq_length")
    m.take("packing", "data.packing", bool)
    if m.has("train_on_prompt"):
        m.set("data.completion_only_loss", not truthy(m.get("train_on_prompt")))
    m.take("val_size", "data.eval_split", float)
    if m.has("flash_attn"):
        value = m.get("flash_attn")
        if value in ATTENTION:
            m.set("model.attn_implementation", ATTENTION[value])
    for key in list(data):
        if key in TRAINING_KEYS and key not in ("output_dir",) and key not in m.seen:
            m.take(key, f"training.{key}")
    if m.has("warmup_ratio"):
        m.set("training.warmup_steps", float(m.get("warmup_ratio")))
    if m.has("report_to"):
        value = m.get("report_to")
        m.set("training.report_to", value if value in ("tensorboard", "wandb") else "none")
    if m.has("deepspeed"):
        m.skip("deepspeed", "set launch.strategy = 'deepspeed' and launch.zero_stage to match this file")
    for key, reason in (("output_dir", "tunedeck creates its own run directory"), ("do_train", "implied"),
                        ("overwrite_output_dir", "every tunedeck run gets a fresh directory"),
                        ("overwrite_cache", "tunedeck tokenizes on the fly"), ("plot_loss", "tunedeck plots loss live"),
                        ("preprocessing_num_workers", "no tunedeck equivalent"), ("max_samples", "no tunedeck equivalent"),
                        ("ddp_timeout", "no tunedeck equivalent"), ("resume_from_checkpoint", "use `tunedeck resume RUN`"),
                        ("save_only_model", "tunedeck always saves resumable checkpoints"),
                        ("dataset_dir", "point data.path at the file itself")):
        m.skip(key, reason)
    m.leftovers()
    return result
