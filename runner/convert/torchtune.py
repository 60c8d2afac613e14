"""torchtune recipe YAML (lora_finetune_*, full_finetune_* recipes), read the way the recipes read it.

Defaults for absent keys, each cited where applied (pytorch/torchtune unless said otherwise):
  recipes/lora_finetune_single_device.py, full_finetune_*.py  clip_grad_norm None (no clipping), no
      lr_scheduler (a constant rate), enable_activation_checkpointing off, log_every_n_steps 1,
      seed None (a random one), run_val_every_n_steps None (dataset_val is never evaluated)
  torchtune/models/<family>/_model_builders.py  lora_rank 8, lora_alpha 16, lora_dropout 0.0,
      apply_lora_to_mlp off; each model's context length (max_seq_len)
  torchtune/datasets/_alpaca.py, _slimorca.py, ...  the builders' Hub sources, formats, train_on_input
  torch.optim.AdamW (pytorch torch/optim/adamw.py)  lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0.01
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ._common import Imported, Mapper, Source, Unmapped, apply_datasets

TT = "torchtune"
# torchtune model builders -> (base hub id, instruct hub id, context length in tokens).
MODELS: dict[str, tuple[str, str, int]] = {
    "llama3_2_1b": ("meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.2-1B-Instruct", 131072),
    "llama3_2_3b": ("meta-llama/Llama-3.2-3B", "meta-llama/Llama-3.2-3B-Instruct", 131072),
    "llama3_1_8b": ("meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B-Instruct", 131072),
    "llama3_1_70b": ("meta-llama/Llama-3.1-70B", "meta-llama/Llama-3.1-70B-Instruct", 131072),
    "llama3_8b": ("meta-llama/Meta-Llama-3-8B", "meta-llama/Meta-Llama-3-8B-Instruct", 8192),
    "llama3_70b": ("meta-llama/Meta-Llama-3-70B", "meta-llama/Meta-Llama-3-70B-Instruct", 8192),
    "llama2_7b": ("meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-7b-chat-hf", 4096),
    "llama2_13b": ("meta-llama/Llama-2-13b-hf", "meta-llama/Llama-2-13b-chat-hf", 4096),
    "mistral_7b": ("mistralai/Mistral-7B-v0.1", "mistralai/Mistral-7B-Instruct-v0.2", 32768),
    "qwen2_5_0_5b": ("Qwen/Qwen2.5-0.5B", "Qwen/Qwen2.5-0.5B-Instruct", 32768),
    "qwen2_5_1_5b": ("Qwen/Qwen2.5-1.5B", "Qwen/Qwen2.5-1.5B-Instruct", 32768),
    "qwen2_5_3b": ("Qwen/Qwen2.5-3B", "Qwen/Qwen2.5-3B-Instruct", 32768),
    "qwen2_5_7b": ("Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-7B-Instruct", 32768),
    "qwen2_5_14b": ("Qwen/Qwen2.5-14B", "Qwen/Qwen2.5-14B-Instruct", 32768),
    "gemma2_2b": ("google/gemma-2-2b", "google/gemma-2-2b-it", 8192),
    "gemma2_9b": ("google/gemma-2-9b", "google/gemma-2-9b-it", 8192),
    "phi3_mini": ("microsoft/Phi-3-mini-4k-instruct", "microsoft/Phi-3-mini-4k-instruct", 4096),
    "llama3_3_70b": ("meta-llama/Llama-3.3-70B-Instruct", "meta-llama/Llama-3.3-70B-Instruct", 131072),
    "gemma_2b": ("google/gemma-2b", "google/gemma-2b-it", 8192),
    "gemma_7b": ("google/gemma-7b", "google/gemma-7b-it", 8192),
    **{f"qwen3_{size.replace('.', '_').lower()}": (f"Qwen/Qwen3-{size}-Base", f"Qwen/Qwen3-{size}", 40960)
       for size in ("0.6B", "1.7B", "4B", "8B", "14B", "32B")},
}
INSTRUCT_DIR = re.compile(r"instruct|chat|(?:^|[-_])it(?:$|[-_])", re.IGNORECASE)
ATTN_MODULES = {"q_proj": "q_proj", "k_proj": "k_proj", "v_proj": "v_proj", "output_proj": "o_proj"}
MLP_MODULES = ["gate_proj", "up_proj", "down_proj"]


# torchtune dataset builders -> what they load (torchtune/datasets/_<name>.py).
class Builder:
    def __init__(self, source: str, fmt: str, train_on_input: bool, **fields: str):
        self.source, self.format, self.train_on_input, self.fields = source, fmt, train_on_input, fields


DATASETS: dict[str, Builder] = {
    "alpaca_dataset": Builder("tatsu-lab/alpaca", "instruction", True),  # _alpaca.py
    "alpaca_cleaned_dataset": Builder("yahma/alpaca-cleaned", "instruction", True),  # _alpaca.py
    "text_completion_dataset": Builder("", "text", True),  # _text_completion.py: loss on every token
    "instruct_dataset": Builder("", "instruction", False, instruction_field="input", output_field="output"),  # _instruct.py
    "chat_dataset": Builder("", "chat", False),  # _chat.py
    # _slimorca.py: ShareGPT turns {from, value} under 'conversations', roles system/human/gpt
    "slimorca_dataset": Builder("Open-Orca/SlimOrca-Dedup", "chat", False, messages_field="conversations",
                                role_field="from", content_field="value"),
}
# Builders that need what this tunedeck cannot do: why, per builder.
NOT_TRAINABLE = {
    "grammar_dataset": "its fixed 'Correct this to standard English' prompt has no tunedeck data format",
    "samsum_dataset": "its fixed 'Summarize this dialogue' prompt has no tunedeck data format",
    "wikitext_dataset": "it needs the Hub config 'wikitext-103-v1' of its dataset, which data.path cannot select",
    "cnn_dailymail_articles_dataset": "it needs the Hub config '3.0.0' of its dataset, which data.path cannot select",
    "preference_dataset": "preference pairs train DPO/reward models, which tunedeck does not do",
    "stack_exchange_paired_dataset": "preference pairs train DPO/reward models, which tunedeck does not do",
    "hh_rlhf_helpful_dataset": "preference pairs train DPO/reward models, which tunedeck does not do",
    "llava_instruct_dataset": "image-text data: tunedeck trains text-only models",
    "the_cauldron_dataset": "image-text data: tunedeck trains text-only models",
    "vqa_dataset": "image-text data: tunedeck trains text-only models",
    "multimodal_chat_dataset": "image-text data: tunedeck trains text-only models",
}
SCHEDULERS = {"get_cosine_schedule_with_warmup": "cosine", "get_linear_schedule_with_warmup": "linear"}
# optimizer -> (transformers optim, its weight_decay default)
OPTIMIZERS = {"torch.optim.AdamW": ("adamw_torch", 0.01), "torch.optim.SGD": ("sgd", 0.0),
              "bitsandbytes.optim.PagedAdamW8bit": ("paged_adamw_8bit", 0.01),
              "bitsandbytes.optim.AdamW8bit": ("adamw_bnb_8bit", 0.01),
              "bitsandbytes.optim.PagedAdamW": ("paged_adamw_32bit", 0.01)}


def _component(value: Any) -> str:
    return value.get("_component_", "") if isinstance(value, dict) else ""


def convert(data: dict[str, Any], base: Path | None = None) -> Imported:
    result = Imported("torchtune recipe YAML")
    m = Mapper(data, result)
    _recipe_kind(data, result)
    context = _model(m, result)
    _datasets(m, result)
    _tokenizer(m, result, context)
    _training(m, result)
    for key, reason in (("output_dir", "tunedeck creates its own run directory"),
                        ("resume_from_checkpoint", "use `tunedeck resume RUN`"), ("device", "chosen by accelerate"),
                        ("loss", "tunedeck uses the model's causal-LM loss"), ("metric_logger", "set training.report_to"),
                        ("shuffle", "tunedeck always shuffles training data"), ("compile", "no tunedeck equivalent"),
                        ("profiler", "no tunedeck equivalent"), ("log_peak_memory_stats", "tunedeck always logs GPU memory"),
                        ("enable_activation_offloading", "tunedeck keeps activations on the GPU (more GPU memory, "
                         "same results)"), ("optimizer_in_bwd", "no tunedeck equivalent (same results, more memory)"),
                        ("save_adapter_weights_only", "tunedeck saves adapters for LoRA runs"),
                        ("log_level", "no tunedeck equivalent")):
        m.skip(key, reason)
    m.leftovers()
    return result


def _recipe_kind(data: dict[str, Any], result: Imported) -> None:
    last = _component(data.get("loss")).lower().rsplit(".", 1)[-1]
    if any(word in last for word in ("dpo", "ppo", "rso", "simpo", "ipo", "forwardkl", "reversekl", "symmetrickl")):
        result.refuse("loss._component_", f"{_component(data.get('loss'))} is a preference/distillation loss, which "
                      "tunedeck does not train (causal-LM loss only)", "plain supervised fine-tuning on the same data")
    elif isinstance(data.get("ref_model"), dict) or isinstance(data.get("teacher_model"), dict):
        result.refuse("ref_model" if "ref_model" in data else "teacher_model", "a second model means preference "
                      "training or distillation, which tunedeck does not do", "plain supervised fine-tuning")


def _model(m: Mapper, result: Imported) -> int | None:
    """model + checkpointer -> model.name_or_path; returns the model's context length when known."""
    model = m.get("model") or {}
    builder = _component(model).rsplit(".", 1)[-1]
    lora = builder.startswith(("lora_", "qlora_"))
    family = re.sub(r"^q?lora_", "", builder)
    instruct_builder = family.endswith("_instruct")
    family = re.sub(r"_(?:base|instruct)$", "", family)
    checkpointer = m.get("checkpointer") or {}
    ckpt_dir = str(checkpointer.get("checkpoint_dir") or "") if isinstance(checkpointer, dict) else ""
    dir_name = ckpt_dir.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]
    context = None
    local = Path(ckpt_dir).expanduser() / "config.json" if ckpt_dir else None
    if local is not None and local.is_file():
        # An HF-format download on this machine: load it from there, as the recipe does.
        m.set("model.name_or_path", str(local.parent.resolve()), "checkpointer.checkpoint_dir (an HF-format "
              "download on this machine)")
        try:
            context = int(json.loads(local.read_text(encoding="utf-8")).get("max_position_embeddings") or 0) or None
        except (OSError, ValueError, TypeError):
            context = None
    elif family in MODELS:
        base_id, instruct_id, context = MODELS[family]
        if instruct_builder or (dir_name and INSTRUCT_DIR.search(dir_name)):
            m.set("model.name_or_path", instruct_id, f"builder {builder} with checkpoint_dir {dir_name!r}: the "
                  "Instruct weights" if dir_name else f"builder {builder}")
        else:
            m.set("model.name_or_path", base_id, f"builder {builder}" + (f", checkpoint_dir {dir_name!r}" if dir_name else ""))
    else:
        result.refuse("model._component_", f"tunedeck cannot name the model of {_component(model) or 'this recipe'}"
                      f"{' in ' + repr(ckpt_dir) if ckpt_dir else ''}: it knows {', '.join(sorted(MODELS))} and "
                      "HF-format checkpoint directories on this machine", "tunedeck's tiny demo model (set "
                      "model.name_or_path)")
    if isinstance(checkpointer, dict) and checkpointer:
        sub = Mapper(checkpointer, result, prefix="checkpointer.")
        sub.get("checkpoint_dir")
        sub.skip("_component_", "tunedeck loads and saves Hugging Face format itself")
        for key in ("checkpoint_files", "output_dir", "model_type", "recipe_checkpoint", "adapter_checkpoint"):
            sub.skip(key, "tunedeck loads weights by hub id or path")
        sub.leftovers()
    m.set("lora.enabled", lora, f"builder {builder}: {'LoRA' if lora else 'all weights trained'}")
    if builder.startswith("qlora_"):
        why = f"builder {builder}: torchtune's QLoRA stores the base weights in NF4"
        m.set("quantization.load_in_4bit", True, why)
        m.set("quantization.bnb_4bit_quant_type", "nf4", why)
        m.set("quantization.bnb_4bit_use_double_quant", True, "torchtune's NF4 quantises the block scales again "
              "(torchao/dtypes/nf4tensor.py, scaler blocks), i.e. double quantisation")
    if isinstance(model, dict):
        sub = Mapper(model, result, prefix="model.")
        sub.get("_component_")
        if lora:
            # torchtune/models/<family>/_model_builders.py lora_* signatures
            sub.take("lora_rank", "lora.r")
            m.default("lora.r", 8, "absent: torchtune's lora_rank 8 (models/<family>/_model_builders.py)")
            sub.take("lora_alpha", "lora.lora_alpha", lambda v: int(v))
            m.default("lora.lora_alpha", 16, "absent: torchtune's lora_alpha 16 (models/<family>/_model_builders.py)")
            sub.take("lora_dropout", "lora.lora_dropout", float)
            m.default("lora.lora_dropout", 0.0, "absent: torchtune's lora_dropout 0.0 (models/<family>/_model_builders.py)")
            modules = [ATTN_MODULES.get(x, x) for x in sub.get("lora_attn_modules", [])]
            if sub.get("apply_lora_to_mlp", False):
                modules += MLP_MODULES
            if modules:
                m.set("lora.target_modules", modules, "lora_attn_modules (output_proj is o_proj) plus the MLP when "
                      "apply_lora_to_mlp" if sub.source.get("apply_lora_to_mlp") else "lora_attn_modules "
                      "(apply_lora_to_mlp is off by default)")
            if sub.get("apply_lora_to_output", False):
                result.unmapped.append(Unmapped("model.apply_lora_to_output", True,
                                                "tunedeck does not put adapters on the output head"))
            sub.take("use_dora", "lora.use_dora", bool)
            sub.get("quantize_base")
        sub.leftovers()
    return context


def _datasets(m: Mapper, result: Imported) -> None:
    dataset = m.get("dataset")
    entries = dataset if isinstance(dataset, list) else [dataset] if isinstance(dataset, dict) else []
    if not entries:
        result.refuse("dataset", "the recipe names no dataset", "tunedeck's demo data (set data.path)")
        return
    sources = [_dataset(m, result, entry, f"dataset[{i}]" if isinstance(dataset, list) else "dataset", train=True)
               for i, entry in enumerate(entries)]
    apply_datasets(m, [s for s in sources if s is not None], "torchtune's concatenated datasets")
    val = m.get("dataset_val")
    if isinstance(val, dict):
        _dataset(m, result, val, "dataset_val", train=False)


def _dataset(m: Mapper, result: Imported, entry: Any, where: str, *, train: bool) -> Source | None:
    """A dataset builder's call: the training source it loads, or (dataset_val) the evaluation data."""
    if not isinstance(entry, dict):
        result.refuse(where, "expected a table with a _component_", "tunedeck's demo data")
        return None
    sub = Mapper(entry, result, prefix=f"{where}.")
    name = _component(entry).rsplit(".", 1)[-1]
    sub.get("_component_")
    known = DATASETS.get(name)
    if known is None:
        why = NOT_TRAINABLE.get(name, f"unknown dataset builder {_component(entry) or '(none)'}: tunedeck knows "
                                f"{', '.join(sorted(DATASETS))}")
        result.refuse(f"{where}._component_", f"{name}: {why}" if name in NOT_TRAINABLE else why,
                      "tunedeck's demo data (set data.path)" if train else "no evaluation data")
        sub.leftovers("the dataset builder was not imported")
        return None
    source = str(sub.get("source") or known.source)
    data_files = sub.get("data_files")
    if source in ("json", "csv", "parquet", "text") and data_files:
        path = str(data_files if isinstance(data_files, str) else data_files[0])  # a local file loaded by format
    else:
        path = source
    if not path:
        result.refuse(f"{where}.source", f"{name} needs a source", "tunedeck's demo data")
        return None
    if not train:
        train_path, train_split = m.result.value("data.path"), m.result.value("data.split", "train")
        split = str(sub.get("split", "train"))
        if path == train_path and split != train_split:
            fraction = _split_fraction(train_split, split)
            if fraction:
                m.set("data.eval_split", fraction, f"dataset_val is {split!r} of the same source: a random "
                      f"{fraction:g} held out (torchtune takes a fixed slice)")
                m.set("data.split", _whole_split(train_split), f"dataset.split {train_split!r} without its slice: "
                      "the eval share is held out by data.eval_split")
                _eval_schedule(m)
                sub.leftovers()
                return None
            result.unmapped.append(Unmapped(f"{where}.split", split, "tunedeck evaluates on the same split as it "
                                            "trains on; the eval rows may overlap training rows"))
        m.set("data.eval_path", path, f"{where}: {name}" + (f" from {path}" if not known.source else ""))
        _eval_schedule(m)
        sub.leftovers()
        return None
    source = Source()
    source.put("path", path, f"{where}: {name} loads {path} (torchtune/datasets/)" if known.source and not
               sub.source.get("source") else None)
    source.put("format", known.format, f"{name} renders {known.format} examples" + (
        "; torchtune wraps the Alpaca prompt in the tokenizer's chat tokens, tunedeck uses the plain Alpaca-style "
        "instruction prompt" if name.startswith("alpaca") else ""))
    for field, column in known.fields.items():
        source.put(field, column, f"{name} reads {column!r}")
    column_map = sub.get("column_map") or {}
    if isinstance(column_map, dict):
        for theirs, ours in (("input", "instruction_field" if known.format == "instruction" else "text_field"),
                             ("output", "output_field"), ("instruction", "instruction_field"),
                             ("conversations", "messages_field"), ("messages", "messages_field")):
            if theirs in column_map:
                source.put(ours, str(column_map[theirs]), f"column_map.{theirs}")
    if name == "text_completion_dataset" and sub.has("column"):
        source.put("text_field", str(sub.get("column")))
    if name in ("chat_dataset", "slimorca_dataset"):
        style = str(sub.get("conversation_style", "sharegpt" if name == "slimorca_dataset" else "openai"))
        if sub.has("conversation_column"):
            source.put("messages_field", str(sub.get("conversation_column")))
        if style == "sharegpt":  # torchtune's ShareGPTToMessages: from/value, human/gpt (data/_messages.py)
            source.put("role_field", "from", "conversation_style sharegpt: the speaker is under 'from'")
            source.put("content_field", "value", "conversation_style sharegpt: the text is under 'value'")
            m.set("data.role_map", ["human=user", "gpt=assistant"], "ShareGPT roles human/gpt, as torchtune maps them")
        elif style != "openai":
            result.refuse(f"{where}.conversation_style", f"conversation style '{style}' is not one tunedeck reads "
                          "(openai, sharegpt)", "the column read as role/content messages")
    if sub.has("split"):
        source.put("split", str(sub.get("split")))
    if sub.has("packed"):
        m.set("data.packing", bool(sub.get("packed")))
    if sub.has("train_on_input"):
        m.set("data.completion_only_loss", not sub.get("train_on_input"), "train_on_input, inverted")
    elif not m.result.is_set("data.completion_only_loss"):
        m.set("data.completion_only_loss", not known.train_on_input,
              f"absent: {name} {'trains on the prompt too' if known.train_on_input else 'masks the prompt'} by "
              f"default (torchtune/datasets/)")
    sub.skip("new_system_prompt", "no tunedeck equivalent")
    sub.skip("filter_fn", "no tunedeck equivalent")
    sub.leftovers()
    return source


def _eval_schedule(m: Mapper) -> None:
    if not m.source.get("run_val_every_n_steps"):
        # the recipes validate only every run_val_every_n_steps (recipes/*.py train loop); without it, never
        m.set("training.eval_strategy", "no", "dataset_val without run_val_every_n_steps: the recipes load it but "
              "never validate; set eval_strategy to evaluate")


def _split_fraction(train: str, val: str) -> float | None:
    """'train[:95%]' / 'train[95%:]' -> 0.05; None when the slices are not a simple percentage split."""
    a = re.fullmatch(r"(\w+)\[:(\d+)%\]", train.replace(" ", ""))
    b = re.fullmatch(r"(\w+)\[(\d+)%:\]", val.replace(" ", ""))
    if a and b and a.group(1) == b.group(1) and a.group(2) == b.group(2):
        return round(1 - int(a.group(2)) / 100, 4)
    return None


def _whole_split(split: str) -> str:
    return split.split("[", 1)[0]


def _tokenizer(m: Mapper, result: Imported, context: int | None) -> None:
    tokenizer = m.get("tokenizer") or {}
    sub = Mapper(tokenizer if isinstance(tokenizer, dict) else {}, result, prefix="tokenizer.")
    sub.get("_component_")
    length = sub.source.get("max_seq_len")
    if length is not None:
        m.set("data.max_seq_length", int(length))
    elif context:
        # max_seq_len null (the builders' default) cuts nothing; only the model's window limits a sequence.
        m.set("data.max_seq_length", context, f"tokenizer.max_seq_len {'null' if 'max_seq_len' in sub.source else 'absent'}"
              f" means no truncation in torchtune; the model's context window ({context} tokens) is the only limit")
    else:
        result.refuse("tokenizer.max_seq_len", "null means 'no limit', and the model's context window is unknown",
                      "tunedeck's default of 512 tokens, which cuts longer examples")
    sub.seen.add("max_seq_len")
    sub.skip("path", "tunedeck loads the tokenizer with the model")
    sub.skip("prompt_template", "tunedeck renders chats with the tokenizer's own chat template")
    sub.leftovers()


def _training(m: Mapper, result: Imported) -> None:
    seed = m.source.get("seed")
    if seed is None:
        m.set("training.seed", 42, "seed null/absent: torchtune draws a random seed; 42 here makes runs repeatable")
    m.take("seed", "training.seed")
    m.take("batch_size", "training.per_device_train_batch_size")
    m.take("epochs", "training.num_train_epochs", float)
    m.take("gradient_accumulation_steps", "training.gradient_accumulation_steps")
    m.default("training.gradient_accumulation_steps", 1, "absent: one batch per optimizer step")
    if m.source.get("clip_grad_norm") is None:
        m.seen.add("clip_grad_norm")
        m.set("training.max_grad_norm", 0.0, f"clip_grad_norm {'null' if 'clip_grad_norm' in m.source else 'absent'}:"
              " torchtune does not clip gradients (0 turns clipping off)")
    else:
        m.take("clip_grad_norm", "training.max_grad_norm", float)
    if m.has("enable_activation_checkpointing"):
        m.take("enable_activation_checkpointing", "training.gradient_checkpointing", bool)
    else:
        m.set("training.gradient_checkpointing", False, "absent: the recipes leave activation checkpointing off")
    m.take("log_every_n_steps", "training.logging_steps")
    m.default("training.logging_steps", 1, "absent: the recipes log every step")
    if m.has("max_steps_per_epoch"):
        per_epoch = int(m.get("max_steps_per_epoch"))
        epochs = float(m.source.get("epochs") or 1)
        m.set("training.max_steps", int(per_epoch * epochs), f"max_steps_per_epoch {per_epoch} x epochs {epochs:g}: "
              "tunedeck caps the whole run (the same when every epoch is at least that long)")
    if m.has("run_val_every_n_steps"):
        m.set("training.eval_strategy", "steps", "run_val_every_n_steps")
        m.take("run_val_every_n_steps", "training.eval_steps")
    dtype = m.get("dtype", "fp32")
    if dtype == "bf16":
        m.set("training.bf16", True, "dtype: bf16")
        m.set("model.dtype", "bfloat16", "torchtune's dtype bf16 trains in pure bf16: weights (and optimizer "
              "state) in bf16, no fp32 copy")
    elif dtype == "fp16":
        result.refuse("dtype", "fp16 is not a training dtype torchtune offers", "fp16 mixed precision")
        m.set("training.fp16", True, "--lenient: dtype fp16")
    elif dtype in ("fp32", None):
        m.set("model.dtype", "float32", "dtype fp32" if "dtype" in m.source else "absent: torchtune trains in fp32")
    else:
        result.unmapped.append(Unmapped("dtype", dtype, "expected bf16 or fp32"))
    _optimizer(m, result)
    _scheduler(m, result)


def _optimizer(m: Mapper, result: Imported) -> None:
    optimizer = m.get("optimizer") or {}
    if not isinstance(optimizer, dict):
        return
    sub = Mapper(optimizer, result, prefix="optimizer.")
    name = sub.get("_component_") or ""
    decay = 0.0
    if name in OPTIMIZERS:
        optim, decay = OPTIMIZERS[name]
        fused = sub.get("fused", False)
        m.set("training.optim", "adamw_torch_fused" if fused and optim == "adamw_torch" else optim, f"optimizer {name}")
    elif name:
        result.refuse("optimizer._component_", f"{name} has no transformers equivalent", "adamw_torch")
        m.set("training.optim", "adamw_torch", f"--lenient: {name} became adamw_torch")
    sub.take("lr", "training.learning_rate", float)
    m.default("training.learning_rate", 1e-3, "absent: torch.optim.AdamW's lr 1e-3 (torch/optim/adamw.py)")
    sub.take("weight_decay", "training.weight_decay", float)
    m.default("training.weight_decay", decay, f"absent: {name or 'the optimizer'}'s own default weight decay {decay:g}"
              " (torch/optim/adamw.py; bitsandbytes AdamW the same)")
    if sub.has("betas"):
        beta1, beta2 = sub.get("betas")
        m.set("training.adam_beta1", float(beta1))
        m.set("training.adam_beta2", float(beta2))
    else:
        m.set("training.adam_beta1", 0.9, "absent: torch's AdamW betas (0.9, 0.999)")
        m.set("training.adam_beta2", 0.999, "absent: torch's AdamW betas (0.9, 0.999)")
    sub.take("eps", "training.adam_epsilon", float)
    m.default("training.adam_epsilon", 1e-8, "absent: torch's AdamW eps 1e-8")
    sub.get("fused")
    sub.leftovers()


def _scheduler(m: Mapper, result: Imported) -> None:
    scheduler = m.get("lr_scheduler")
    if not isinstance(scheduler, dict):
        m.set("training.lr_scheduler_type", "constant", "no lr_scheduler: the recipes keep the learning rate constant")
        m.set("training.warmup_steps", 0, "no lr_scheduler, so no warmup")
        return
    sub = Mapper(scheduler, result, prefix="lr_scheduler.")
    name = (sub.get("_component_") or "").rsplit(".", 1)[-1]
    if name in SCHEDULERS:
        m.set("training.lr_scheduler_type", SCHEDULERS[name])
    elif name:
        result.refuse("lr_scheduler._component_", f"{name} has no transformers equivalent", "a cosine schedule")
        m.set("training.lr_scheduler_type", "cosine", f"--lenient: {name} became cosine")
    sub.take("num_warmup_steps", "training.warmup_steps", int)
    m.default("training.warmup_steps", 0, "absent: no warmup")
    sub.skip("num_cycles", "tunedeck's cosine is a single half cycle (torchtune's default 0.5)")
    sub.leftovers()
