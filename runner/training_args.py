"""The transformers `TrainingArguments` of a run, as plain keyword arguments.

Pure (no transformers import) so that the trainer (`runner.train`) and the exports
(`tunedeck export --to training-args|script`) share exactly one mapping from the schema.
"""

from __future__ import annotations

from typing import Any

from runner.schema import Config


def training_arguments(config: Config, *, output_dir: str, run_name: str, cuda: bool, has_eval: bool) -> dict[str, Any]:
    """Keyword arguments for `TrainingArguments(**...)` (transformers 5 names), JSON-serialisable."""
    t = config.training
    eval_strategy = t.eval_strategy if has_eval else "no"
    wants_metric = t.load_best_model_at_end or t.early_stopping_patience or t.save_strategy == "best"
    return dict(
        output_dir=output_dir,
        run_name=run_name,
        per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=t.per_device_eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        seed=t.seed,
        learning_rate=t.learning_rate,
        optim=t.optim,
        weight_decay=t.weight_decay,
        adam_beta1=t.adam_beta1,
        adam_beta2=t.adam_beta2,
        adam_epsilon=t.adam_epsilon,
        max_grad_norm=t.max_grad_norm,
        lr_scheduler_type=t.lr_scheduler_type,
        warmup_steps=t.warmup_steps,  # a float below 1 is a fraction of all steps
        bf16=t.bf16,
        fp16=t.fp16,
        tf32=t.tf32 if cuda else None,  # TF32 is a CUDA setting; None leaves the backend alone
        activation_checkpointing=t.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if t.gradient_checkpointing else None,
        save_strategy=t.save_strategy,
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit or None,  # 0 means keep all
        eval_strategy=eval_strategy,
        eval_steps=t.eval_steps,
        load_best_model_at_end=t.load_best_model_at_end and eval_strategy != "no",
        metric_for_best_model=t.metric_for_best_model if wants_metric else None,
        logging_strategy="steps",
        logging_steps=t.logging_steps,
        logging_nan_inf_filter=False,  # a NaN loss must surface, not be averaged away
        report_to=[] if t.report_to == "none" else [t.report_to],
        disable_tqdm=True,  # the events carry progress; output.log stays readable
        use_cpu=not cuda,
        include_num_input_tokens_seen="non_padding",  # real tokens for tokens/s
        remove_unused_columns=False,  # our columns are exactly the model inputs
        ddp_find_unused_parameters=False,
        dataloader_num_workers=0,
    )
