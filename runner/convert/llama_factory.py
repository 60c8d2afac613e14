"""LLaMA-Factory training YAML (`llamafactory-cli train config.yaml`), both layouts, as LLaMA-Factory reads it.

Defaults for absent keys follow LLaMA-Factory's argument classes (hiyouga/LLaMA-Factory):
  src/llamafactory/hparams/finetuning_args.py  stage sft, finetuning_type lora, lora_rank 8,
                                               lora_alpha = 2 x lora_rank, lora_dropout 0, lora_target all
  src/llamafactory/hparams/model_args.py       disable_gradient_checkpointing false (so it is on),
                                               double_quantization true, quantization_type nf4, flash_attn auto
  src/llamafactory/hparams/data_args.py        cutoff_len 2048, train_on_prompt false, val_size 0,
                                               dataset_dir "data" (holding dataset_info.json)
  training keys                                Seq2SeqTrainingArguments, i.e. transformers' defaults
The newer layout (src/llamafactory/v1/config/*.py) puts `model`, `peft_config`, `train_dataset` and
`dist_config` at the top: training_args.py micro_batch_size 1, global_batch_size 1, learning_rate 1e-4,
bf16 false; data_args.py cutoff_len 2048.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ._common import (Imported, Mapper, Source, Unmapped, apply_datasets, as_list, deepspeed_file, fsdp_on,
                      transformers_defaults, truthy)
from .hf_args import TRAINING_KEYS

LF = "LLaMA-Factory"
ATTENTION = {"fa2": "flash_attention_2", "sdpa": "sdpa", "disabled": "eager"}
PREFERENCE_STAGES = {"rm": "reward modelling", "ppo": "PPO (RLHF)", "dpo": "DPO preference training",
                     "kto": "KTO preference training"}
V1_KEYS = {"peft_config", "train_dataset", "dist_config", "model_class", "kernel_config"}
# dataset_info.json "formatting" -> data.format, and its column names -> ours (data/README.md of LLaMA-Factory)
FORMATTING = {"alpaca": "instruction", "sharegpt": "chat"}
ALPACA_COLUMNS = {"prompt": ("data.instruction_field", "instruction"), "query": ("data.input_field", "input"),
                  "response": ("data.output_field", "output")}


def is_v1(data: dict[str, Any]) -> bool:
    """The newer layout: `model` is a plain name, beside peft_config / train_dataset / dist_config."""
    return isinstance(data.get("model"), str) and bool(V1_KEYS & data.keys())


# --- the classic layout ------------------------------------------------------------------------
def convert(data: dict[str, Any], base: Path | None = None) -> Imported:
    result = Imported("LLaMA-Factory YAML")
    m = Mapper(data, result)
    if m.has("model_name_or_path"):
        m.take("model_name_or_path", "model.name_or_path")
    else:
        result.refuse("model_name_or_path", "the config names no model", "tunedeck's tiny demo model")
    m.take("trust_remote_code", "model.trust_remote_code", bool)
    stage = str(m.get("stage", "sft"))
    _stage(result, stage, m.source.get("pref_loss"))
    m.get("pref_loss")
    _finetuning(m, result, str(m.get("finetuning_type", "lora")), "finetuning_type")
    if result.value("lora.enabled"):
        m.take("lora_rank", "lora.r")
        m.default("lora.r", 8, "absent: LLaMA-Factory's lora_rank 8 (hparams/finetuning_args.py)")
        rank = int(result.value("lora.r"))
        m.take("lora_alpha", "lora.lora_alpha")
        m.default("lora.lora_alpha", 2 * rank, f"absent: LLaMA-Factory uses 2 x lora_rank = {2 * rank} "
                  "(hparams/finetuning_args.py __post_init__)")
        m.take("lora_dropout", "lora.lora_dropout", float)
        m.default("lora.lora_dropout", 0.0, "absent: LLaMA-Factory's lora_dropout 0 (hparams/finetuning_args.py)")
        if m.has("lora_target"):
            modules = as_list(m.get("lora_target"))
            m.set("lora.target_modules", "all-linear" if modules == ["all"] else modules,
                  "lora_target: all, every linear layer" if modules == ["all"] else None)
        else:
            m.set("lora.target_modules", "all-linear", "absent: LLaMA-Factory's lora_target 'all', every linear "
                  "layer (hparams/finetuning_args.py)")
        m.take("use_dora", "lora.use_dora", bool)
        m.take("use_rslora", "lora.use_rslora", bool)
    _quantization(m, result)
    _data(m, result, stage, base)
    if m.has("flash_attn"):
        value = m.get("flash_attn")
        if value in ATTENTION:
            m.set("model.attn_implementation", ATTENTION[value], f"flash_attn: {value}")
    if truthy(m.get("disable_gradient_checkpointing", False)):
        m.set("training.gradient_checkpointing", False, "disable_gradient_checkpointing: true")
    else:
        m.set("training.gradient_checkpointing", True, "LLaMA-Factory checkpoints gradients unless "
              "disable_gradient_checkpointing is set (hparams/model_args.py, model/model_utils/checkpointing.py)")
    for key in list(data):
        if key in TRAINING_KEYS and key not in ("output_dir", "gradient_checkpointing") and key not in m.seen:
            m.take(key, f"training.{key}")
    if m.has("warmup_ratio"):
        m.set("training.warmup_steps", float(m.get("warmup_ratio")), "warmup_ratio, as a fraction of all steps")
    if m.has("early_stopping_steps"):
        # LLaMA-Factory hands it to transformers' EarlyStoppingCallback as the patience (src/llamafactory/train/tuner.py)
        m.set("training.early_stopping_patience", int(m.get("early_stopping_steps")), "early_stopping_steps: the "
              "evaluations without improvement before stopping (EarlyStoppingCallback's patience)")
    if m.has("report_to"):
        value = m.get("report_to")
        m.set("training.report_to", value if value in ("tensorboard", "wandb") else "none")
    if m.has("deepspeed"):
        deepspeed_file(m, "deepspeed", m.get("deepspeed"), LF)
    if m.has("fsdp") and m.source["fsdp"] not in ("", [], False):
        fsdp_on(m, "fsdp", LF)
        m.skip("fsdp_config", "tunedeck generates its own FSDP settings")
    transformers_defaults(m, LF)
    for key, reason in (("output_dir", "tunedeck creates its own run directory"), ("do_train", "implied"),
                        ("overwrite_output_dir", "every tunedeck run gets a fresh directory"),
                        ("overwrite_cache", "tunedeck tokenizes on the fly"), ("plot_loss", "tunedeck plots loss live"),
                        ("preprocessing_num_workers", "no tunedeck equivalent"),
                        ("ddp_timeout", "no tunedeck equivalent"), ("resume_from_checkpoint", "use `tunedeck resume RUN`"),
                        ("save_only_model", "tunedeck always saves resumable checkpoints"),
                        ("dataloader_num_workers", "tunedeck sets this itself")):
        m.skip(key, reason)
    m.leftovers()
    return result


def _stage(result: Imported, stage: str, pref_loss: Any) -> None:
    if stage in PREFERENCE_STAGES:
        what = PREFERENCE_STAGES[stage]
        if stage == "dpo" and pref_loss in ("orpo", "simpo"):
            what = f"{str(pref_loss).upper()} preference training (stage dpo, pref_loss {pref_loss})"
        result.refuse("stage", f"stage '{stage}' is {what}, which tunedeck does not do: it trains with the causal-LM "
                      "loss only", "plain supervised fine-tuning on the same data, which is NOT what this config trains")
    elif stage not in ("sft", "pt"):
        result.refuse("stage", f"stage '{stage}' is not one tunedeck trains (sft, pt)", "supervised fine-tuning")


def _finetuning(m: Mapper, result: Imported, kind: str, key: str) -> None:
    if kind == "lora":
        m.set("lora.enabled", True, None if key in m.source else f"absent: LLaMA-Factory's {key} 'lora' "
              "(hparams/finetuning_args.py)")
    elif kind == "full":
        m.set("lora.enabled", False, f"{key}: full, all weights trained")
    else:
        result.refuse(key, f"'{kind}' fine-tuning is not supported (tunedeck trains LoRA or all weights)",
                      "LoRA with LLaMA-Factory's default rank")
        m.set("lora.enabled", True, f"--lenient: '{kind}' became LoRA")


def _quantization(m: Mapper, result: Imported) -> None:
    bits = m.get("quantization_bit")
    if bits in (4, 8):
        m.set(f"quantization.load_in_{bits}bit", True, f"quantization_bit: {bits} (bitsandbytes)")
    elif bits is not None:
        result.refuse("quantization_bit", f"{bits}-bit loading is not supported (bitsandbytes 4 or 8 bits)",
                      "unquantised weights")
    method = m.get("quantization_method", "bitsandbytes")
    if bits is not None and method not in ("bitsandbytes", "bnb"):
        result.refuse("quantization_method", f"'{method}' quantisation is not supported (bitsandbytes only)",
                      "bitsandbytes quantisation with the same bits")
    if bits == 4:
        m.take("quantization_type", "quantization.bnb_4bit_quant_type")
        m.default("quantization.bnb_4bit_quant_type", "nf4", "absent: LLaMA-Factory's quantization_type nf4 "
                  "(hparams/model_args.py)")
        m.take("double_quantization", "quantization.bnb_4bit_use_double_quant", bool)
        m.default("quantization.bnb_4bit_use_double_quant", True, "absent: LLaMA-Factory double-quantises by default "
                  "(hparams/model_args.py double_quantization)")
    else:
        m.get("quantization_type")
        m.get("double_quantization")


def _data(m: Mapper, result: Imported, stage: str, base: Path | None) -> None:
    names = as_list(m.get("dataset")) if m.has("dataset") else []
    dataset_dir = str(m.get("dataset_dir", "data"))
    if names:
        found = _dataset_info(dataset_dir, base)
        apply_datasets(m, [_dataset(m, result, name, found, dataset_dir, "dataset") for name in names],
                       "LLaMA-Factory's dataset list")
    else:
        result.refuse("dataset", "the config names no training data", "tunedeck's demo data (set data.path)")
    if m.has("eval_dataset"):
        evals = as_list(m.get("eval_dataset"))
        found = _dataset_info(dataset_dir, base)
        entry = found[0].get(evals[0]) if found else None
        if found and isinstance(entry, dict) and (entry.get("file_name") or entry.get("hf_hub_url")):
            m.set("data.eval_path", _entry_path(entry, found[1]), f"eval_dataset {evals[0]!r} in dataset_info.json")
        else:
            result.unmapped.append(Unmapped("eval_dataset", evals, "not found in dataset_info.json; set data.eval_path"))
    if stage == "pt":
        m.set("data.format", "text", "stage pt: plain text")
    _template(m, result)
    m.take("max_samples", "data.max_samples", int)
    m.take("cutoff_len", "data.max_seq_length")
    m.default("data.max_seq_length", 2048, "absent: LLaMA-Factory's cutoff_len 2048 (hparams/data_args.py)")
    m.take("packing", "data.packing", bool)
    if truthy(m.get("neat_packing", False)):
        m.set("data.packing", True, "neat_packing: packed without attention across examples, as tunedeck packs")
    m.default("data.packing", stage == "pt", f"absent: LLaMA-Factory packs only for stage pt "
              "(hparams/parser.py)")
    if m.has("train_on_prompt"):
        m.set("data.completion_only_loss", not truthy(m.get("train_on_prompt")), "train_on_prompt, inverted")
    else:
        m.set("data.completion_only_loss", True, "absent: LLaMA-Factory's train_on_prompt false: prompts are masked "
              "(hparams/data_args.py)")
    m.take("val_size", "data.eval_split", float)
    m.default("data.eval_split", 0.0, "absent: LLaMA-Factory's val_size 0 (hparams/data_args.py)")


# LLaMA-Factory template names (src/llamafactory/data/template.py) with a tunedeck built-in of the same format.
TEMPLATES = {"llama3": "llama3", "qwen": "qwen", "chatml": "chatml", "mistral": "mistral", "gemma": "gemma",
             "phi": "phi3", "zephyr": "zephyr", "alpaca": "alpaca"}


def _template(m: Mapper, result: Imported) -> None:
    if not m.has("template"):
        return
    name = str(m.get("template"))
    if name in TEMPLATES:
        m.set("data.chat_template", TEMPLATES[name], f"template: {name}")
    else:
        m.set("data.chat_template", "tokenizer", f"template {name!r}: LLaMA-Factory's copy of the model's own chat "
              "format, which the tokenizer ships (check with `tunedeck data PRESET`)")


def _dataset_info(dataset_dir: str, base: Path | None) -> tuple[dict[str, Any], Path] | None:
    """dataset_dir/dataset_info.json, from where tunedeck runs, beside the config, or above it: LLaMA-Factory
    runs from its checkout's root, and example configs sit a level or two below it."""
    found = _find_up(str(Path(dataset_dir) / "dataset_info.json"), base)[0]
    if found is None:
        return None
    try:
        data = json.loads(found.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (data, found.parent) if isinstance(data, dict) else None


def _find_up(name: str, base: Path | None) -> tuple[Path | None, Path | None]:
    """`name` as LLaMA-Factory would open it (from its checkout's root), with that root."""
    folders = [Path.cwd()] + ([base, *list(base.resolve().parents)[:3]] if base is not None else [])
    for folder in folders:
        if (folder / name).is_file():
            return folder / name, folder
    return None, None


def _entry_path(entry: dict[str, Any], folder: Path) -> str:
    """Where a dataset_info.json entry's data is: its hub id, or its file beside dataset_info.json."""
    if entry.get("hf_hub_url"):
        return str(entry["hf_hub_url"])
    return str((folder / str(entry["file_name"])).resolve())  # where LLaMA-Factory reads it, present or not


def _dataset(m: Mapper, result: Imported, name: str, found: tuple[dict[str, Any], Path] | None, dataset_dir: str,
             key: str) -> Source:
    """A dataset named in LLaMA-Factory's dataset_info.json: its file (or hub id), format and columns
    (the entry keys are described in LLaMA-Factory's data/README.md)."""
    source = Source()
    info = found[0] if found else None
    entry = info.get(name) if info else None
    if not found or not isinstance(entry, dict) or not (entry.get("file_name") or entry.get("hf_hub_url")):
        where = f"{dataset_dir}/dataset_info.json"
        result.refuse(key, f"dataset {name!r} is a name in LLaMA-Factory's {where}, which "
                      f"{'does not list it with a file or hub id' if info else 'is not next to this config'}",
                      f"data.path = {name!r}, which tunedeck reads as a Hub dataset id")
        source.put("path", name, f"--lenient: the dataset name {name!r}, read as a Hub id")
        return source
    source.put("path", _entry_path(entry, found[1]), f"{key} {name!r} in dataset_info.json")
    formatting = str(entry.get("formatting", "alpaca"))
    if entry.get("ranking"):
        result.refuse(key, f"dataset {name!r} is preference (ranking) data", "plain supervised fine-tuning")
    if formatting not in FORMATTING:
        result.refuse(key, f"dataset {name!r} uses formatting {formatting!r}, which tunedeck cannot render",
                      "the 'instruction' format")
        formatting = "alpaca"
    source.put("format", FORMATTING[formatting], f"{name!r} has formatting {formatting!r}" +
               (" (absent means alpaca, data/README.md)" if "formatting" not in entry else "") +
               ("; LLaMA-Factory renders these rows as one chat turn through its template, tunedeck with its "
                "Alpaca-style instruction prompt" if formatting == "alpaca" else ""))
    columns = entry.get("columns") or {}
    if formatting == "alpaca":
        for theirs, (target, ours) in ALPACA_COLUMNS.items():
            column = columns.get(theirs, ours)
            if column != ours:
                source.put(target.split(".", 1)[1], column, f"columns.{theirs} of {name!r}")
    else:
        # ShareGPT defaults: turns under 'conversations', {from, value}, human/gpt/system (data/README.md)
        source.put("messages_field", str(columns.get("messages", "conversations")),
                   None if "messages" in columns else "sharegpt's default column 'conversations'")
        tags = entry.get("tags") or {}
        source.put("role_field", str(tags.get("role_tag", "from")), None if "role_tag" in tags else "sharegpt's default "
                   "role tag 'from'")
        source.put("content_field", str(tags.get("content_tag", "value")), None if "content_tag" in tags else
                   "sharegpt's default content tag 'value'")
        pairs = [f"{tags.get(tag, default)}={role}" for tag, default, role in (
            ("user_tag", "human", "user"), ("assistant_tag", "gpt", "assistant"), ("system_tag", "system", "system"),
            ("observation_tag", "observation", "tool")) if tags.get(tag, default) != role]
        m.set("data.role_map", pairs, f"the role tags of {name!r} (sharegpt defaults human/gpt)")
    if entry.get("num_samples"):
        source.put("max_samples", int(entry["num_samples"]), f"num_samples of {name!r}")
    return source


# --- the newer layout (src/llamafactory/v1) ----------------------------------------------------
def convert_v1(data: dict[str, Any], base: Path | None = None) -> Imported:
    result = Imported("LLaMA-Factory YAML (v1 layout)")
    m = Mapper(data, result)
    m.take("model", "model.name_or_path")
    m.take("trust_remote_code", "model.trust_remote_code", bool)
    model_class = m.get("model_class", "llm")
    if model_class != "llm":
        result.refuse("model_class", f"model_class {model_class!r}: tunedeck trains text-only causal LMs",
                      "the model loaded as a causal LM")
    peft = m.get("peft_config")
    if isinstance(peft, dict):
        sub = Mapper(peft, result, prefix="peft_config.")
        _finetuning(m, result, str(sub.get("name", "lora")), "peft_config.name")
        sub.take("r", "lora.r")
        sub.take("lora_alpha", "lora.lora_alpha")
        sub.take("lora_dropout", "lora.lora_dropout", float)
        if sub.has("target_modules"):
            modules = as_list(sub.get("target_modules"))
            m.set("lora.target_modules", "all-linear" if modules == ["all"] else modules,
                  "target_modules: all, every linear layer" if modules == ["all"] else None)
        sub.leftovers()
    else:
        m.set("lora.enabled", False, "no peft_config: the v1 layout trains all weights")
    m.skip("kernel_config", "tunedeck picks kernels itself (attention: model.attn_implementation)")
    dist = m.get("dist_config")
    if isinstance(dist, dict):
        sub = Mapper(dist, result, prefix="dist_config.")
        name = str(sub.get("name", ""))
        if name.startswith("fsdp"):
            fsdp_on(m, "dist_config", f"{LF} dist_config.name {name}")
        elif name == "deepspeed":
            if sub.has("config_file"):
                deepspeed_file(m, "dist_config", sub.get("config_file"), LF)
            else:
                m.set("launch.strategy", "deepspeed", "dist_config.name deepspeed")
        elif name:
            result.unmapped.append(Unmapped("dist_config.name", name, "tunedeck offers ddp, fsdp and deepspeed"))
        sub.skip("dcp_path", "tunedeck saves its own checkpoints")
        sub.leftovers()
    _v1_dataset(m, result, base)
    m.take("cutoff_len", "data.max_seq_length")
    m.default("data.max_seq_length", 2048, "absent: LLaMA-Factory's cutoff_len 2048 (v1/config/data_args.py)")
    m.take("micro_batch_size", "training.per_device_train_batch_size")
    m.default("training.per_device_train_batch_size", 1, "absent: LLaMA-Factory v1 micro_batch_size 1 "
              "(v1/config/training_args.py)")
    micro = int(result.value("training.per_device_train_batch_size"))
    if m.has("global_batch_size"):
        m.set("training.gradient_accumulation_steps", max(1, int(m.get("global_batch_size")) // micro),
              "global_batch_size // micro_batch_size (on one GPU; divide by the GPU count for more)")
    m.take("learning_rate", "training.learning_rate", float)
    m.default("training.learning_rate", 1e-4, "absent: LLaMA-Factory v1 learning_rate 1e-4 (v1/config/training_args.py)")
    m.take("bf16", "training.bf16", bool)
    m.take("max_steps", "training.max_steps")
    m.take("num_train_epochs", "training.num_train_epochs", float)
    m.skip("output_dir", "tunedeck creates its own run directory")
    _template(m, result)
    for key in ("sample_backend", "max_new_tokens"):
        m.skip(key, "sampling settings for LLaMA-Factory's chat; see [generation]")
    m.leftovers()
    return result


def _v1_dataset(m: Mapper, result: Imported, base: Path | None) -> None:
    """train_dataset names a YAML of datasets: name -> {file_name, dataset_dir, converter, num_samples}."""
    if not m.has("train_dataset"):
        result.refuse("train_dataset", "the config names no training data", "tunedeck's demo data")
        return
    value = str(m.get("train_dataset"))
    found, root = _find_up(value, base) if value.endswith((".yaml", ".yml")) else (None, None)
    if found is None:
        result.refuse("train_dataset", f"{value!r} is a dataset list of LLaMA-Factory that is not on this machine "
                      "next to the config", f"data.path = {value!r}")
        m.set("data.path", value, "--lenient: train_dataset as written")
        return
    import yaml

    try:
        entries = yaml.safe_load(found.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        entries = {}
    if not isinstance(entries, dict) or not entries:
        result.refuse("train_dataset", f"{found.name} lists no datasets", "tunedeck's demo data")
        return
    sources = []
    for name, entry in entries.items():
        entry = dict(entry or {})
        source = Source()
        converter = str(entry.get("converter", "alpaca"))
        if converter not in FORMATTING:
            result.refuse("train_dataset", f"dataset {name!r} uses converter {converter!r}, which tunedeck cannot "
                          "render (preference pairs and the like)", "the 'instruction' format")
            converter = "alpaca"
        if entry.get("file_name"):
            relative = str(Path(entry.get("dataset_dir") or ".") / str(entry["file_name"]))
            path = _find_up(relative, root)[0]
            source.put("path", str(path.resolve()) if path else relative, f"{name!r} in {found.name}")
        elif entry.get("hf_hub_url"):
            source.put("path", str(entry["hf_hub_url"]), f"{name!r} in {found.name}")
        source.put("format", FORMATTING[converter], f"converter {converter!r} of {name!r}")
        if entry.get("num_samples"):
            source.put("max_samples", int(entry["num_samples"]), f"num_samples of {name!r}")
        sources.append(source)
    apply_datasets(m, sources, found.name)
