"""`TrainingArguments` JSON: what the trainer passes to transformers, loadable with
`TrainingArguments(**json.load(f))`. Carries the [training] section only (JSON has no comments)."""

from __future__ import annotations

import json

from runner.schema import Config
from runner.training_args import training_arguments


def training_args_json(config: Config, *, cuda: bool, name: str) -> str:
    d = config.data
    kwargs = training_arguments(config, output_dir=f"runs/{name}/checkpoints", run_name=name, cuda=cuda,
                                has_eval=bool(d.eval_path) or d.eval_split > 0)
    return json.dumps(kwargs, indent=2) + "\n"
