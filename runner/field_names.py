"""The "did you mean" for preset keys: other tools' names for our fields, then spelling and abbreviations.

People arrive with names from Axolotl, LLaMA-Factory, torchtune, nanoGPT, Lightning or torchrun
(`micro_batch_size`, `cutoff_len`, `accumulate_grad_batches`, `nnodes`). Those are not misspellings,
so no distance measure finds them: they are listed here, each pointing at the field that means the
same. Everything else goes through `problems.did_you_mean` (case, abbreviations, spelling).
"""

from __future__ import annotations

from runner.problems import did_you_mean
from runner.schema import FIELDS

# Another tool's (or an older transformers) name -> our field(s); with several, the one in the section
# the user wrote it in wins, else the first.
ALIASES: dict[str, tuple[str, ...]] = {
    # batch and steps
    "batch_size": ("training.per_device_train_batch_size",),
    "micro_batch_size": ("training.per_device_train_batch_size",),
    "train_batch_size": ("training.per_device_train_batch_size",),
    "per_gpu_train_batch_size": ("training.per_device_train_batch_size",),
    "train_micro_batch_size_per_gpu": ("training.per_device_train_batch_size",),
    "eval_batch_size": ("training.per_device_eval_batch_size",),
    "per_gpu_eval_batch_size": ("training.per_device_eval_batch_size",),
    "accumulate_grad_batches": ("training.gradient_accumulation_steps",),
    "gradient_accumulation_iters": ("training.gradient_accumulation_steps",),
    "epochs": ("training.num_train_epochs",),
    "num_epochs": ("training.num_train_epochs",),
    "max_epochs": ("training.num_train_epochs",),
    "n_epochs": ("training.num_train_epochs",),
    "max_iters": ("training.max_steps",),
    "total_steps": ("training.max_steps",),
    "num_steps": ("training.max_steps",),
    "train_steps": ("training.max_steps",),
    "warmup": ("training.warmup_steps",),
    "warmup_ratio": ("training.warmup_steps",),
    "num_warmup_steps": ("training.warmup_steps",),
    "warmup_iters": ("training.warmup_steps",),
    # optimizer and schedule
    "lr": ("training.learning_rate",),
    "optimizer": ("training.optim",),
    "scheduler": ("training.lr_scheduler_type",),
    "lr_scheduler": ("training.lr_scheduler_type",),
    "lr_schedule": ("training.lr_scheduler_type",),
    "wd": ("training.weight_decay",),
    "beta1": ("training.adam_beta1",),
    "beta2": ("training.adam_beta2",),
    "adam_eps": ("training.adam_epsilon",),
    "eps": ("training.adam_epsilon",),
    "grad_clip": ("training.max_grad_norm",),
    "gradient_clipping": ("training.max_grad_norm",),
    "clip_grad_norm": ("training.max_grad_norm",),
    "activation_checkpointing": ("training.gradient_checkpointing",),
    # evaluation, saving, logging
    "evaluation_strategy": ("training.eval_strategy",),
    "eval_every": ("training.eval_steps",),
    "eval_interval": ("training.eval_steps",),
    "save_every": ("training.save_steps",),
    "save_interval": ("training.save_steps",),
    "log_every": ("training.logging_steps",),
    "log_interval": ("training.logging_steps",),
    "save_dir": ("training.output_dir",),
    "out_dir": ("training.output_dir",),
    "patience": ("training.early_stopping_patience",),
    # data
    "seq_length": ("data.max_seq_length",),
    "seq_len": ("data.max_seq_length",),
    "sequence_len": ("data.max_seq_length",),
    "sequence_length": ("data.max_seq_length",),
    "max_length": ("data.max_seq_length",),
    "max_seq_len": ("data.max_seq_length",),
    "cutoff_len": ("data.max_seq_length",),
    "block_size": ("data.max_seq_length",),
    "context_length": ("data.max_seq_length",),
    "dataset": ("data.path",),
    "template": ("data.chat_template",),  # LLaMA-Factory
    "conversation": ("data.chat_template",),
    "field_messages": ("data.messages_field",),  # Axolotl chat_template datasets
    "message_field_role": ("data.role_field",),
    "message_field_content": ("data.content_field",),
    "roles": ("data.role_map",),
    "dataset_path": ("data.path",),
    "train_file": ("data.path",),
    "data_path": ("data.path",),
    "val_set_size": ("data.eval_split",),
    "validation_split": ("data.eval_split",),
    "test_size": ("data.eval_split",),
    "eval_file": ("data.eval_path",),
    "validation_file": ("data.eval_path",),
    "sample_packing": ("data.packing",),
    "train_on_inputs": ("data.completion_only_loss",),
    # model, adapters, quantization
    "dropout": ("lora.lora_dropout", "model.hidden_dropout"),
    "base_model": ("model.name_or_path",),
    "model_name": ("model.name_or_path",),
    "model_name_or_path": ("model.name_or_path",),
    "model_id": ("model.name_or_path",),
    "tokenizer": ("model.tokenizer_name_or_path",),
    "tokenizer_name": ("model.tokenizer_name_or_path",),
    "torch_dtype": ("model.dtype",),
    "n_layer": ("model.num_hidden_layers",),
    "n_layers": ("model.num_hidden_layers",),
    "n_embd": ("model.hidden_size",),
    "n_head": ("model.num_attention_heads",),
    "rank": ("lora.r",),
    "lora_rank": ("lora.r",),
    "lora_r": ("lora.r",),
    "alpha": ("lora.lora_alpha",),
    "lora_target": ("lora.target_modules",),
    "lora_target_modules": ("lora.target_modules",),
    "lora_modules": ("lora.target_modules",),
    "adapter": ("lora.enabled",),
    "quantization_bit": ("quantization.load_in_4bit", "quantization.load_in_8bit"),
    "double_quant": ("quantization.bnb_4bit_use_double_quant",),
    "bnb_4bit_use_double_quantization": ("quantization.bnb_4bit_use_double_quant",),
    # launch (torchrun / accelerate / SLURM words)
    "gpus": ("launch.num_processes",),
    "num_gpus": ("launch.num_processes",),
    "nproc_per_node": ("launch.num_processes",),
    "nnodes": ("launch.num_machines",),
    "num_nodes": ("launch.num_machines",),
    "node_rank": ("launch.machine_rank",),
    "master_addr": ("launch.main_process_ip",),
    "master_port": ("launch.main_process_port",),
    "deepspeed": ("launch.strategy",),
    "fsdp": ("launch.strategy",),
    # generation
    "max_tokens": ("generation.max_new_tokens",),
    "max_new_token": ("generation.max_new_tokens",),
}


def suggest_key(section: str, name: str) -> str | None:
    """The full `section.key` the user most likely meant by `name` written in [section], or None.

    The section's own fields are tried first (alias, then spelling); then every field, so that
    `seq_length` written under [training] still points at data.max_seq_length.
    """
    keys = [f.key for f in FIELDS]
    lowered = name.strip().lower().replace("-", "_")
    if lowered in ALIASES:
        targets = [k for k in ALIASES[lowered] if k in keys]
        own = [k for k in targets if k.startswith(f"{section}.")]
        if own or targets:
            return (own or targets)[0]
    own_names = [f.name for f in FIELDS if f.section == section]
    guess = did_you_mean(name, own_names)
    if guess:
        return f"{section}.{guess}"
    guess = did_you_mean(name, [f.name for f in FIELDS])
    if guess:
        return next(f.key for f in FIELDS if f.name == guess)
    return None


def hint_for(section: str, name: str) -> str:
    """The "did you mean" hint for an unknown key, in words ('' when nothing is close)."""
    key = suggest_key(section, name)
    if key is None:
        return ""
    target_section, target = key.split(".", 1)
    if target_section == section:
        return f"did you mean '{target}'?"
    return f"did you mean '{key}'? it belongs in the [{target_section}] section"
