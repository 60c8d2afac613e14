"""A standalone Python training script equivalent to the run (no tunedeck import).

The settings are written into the script as plain dicts; the TrainingArguments are the very
kwargs the trainer uses (runner.training_args). The built-in demo model and data are replaced
by their real paths on this machine (the tiny model is built into the cache if missing), so the
exported demo script runs without tunedeck.
"""

from __future__ import annotations

import os
import pprint
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from runner import prompts
from runner.demo_spec import DEMO_DATA, DEMO_MODEL
from runner.problems import ConfigError, Problem
from runner.schema import Config
from runner.target import describe, target_cuda
from runner.training_args import training_arguments

from . import block

TEMPLATE = Path(__file__).with_name("standalone_script.py.tmpl")
ARCH_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
             "max_position_embeddings")


def demo_paths() -> tuple[str, str]:
    """(tiny demo model dir, demo data file), built/resolved by a child process: torch stays out of this one."""
    code = ("from runner.train_demo import demo_model_dir, demo_data_file; "
            "print(demo_model_dir()); print(demo_data_file())")
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        raise ConfigError([Problem("error", f"cannot build the tiny demo model: {done.stderr.strip()[-500:]}",
                                   key="model.name_or_path")])
    model_dir, data_file = done.stdout.splitlines()[-2:]  # lines: a path may hold spaces
    return model_dir, data_file


def _literal(value: Any) -> str:
    return pprint.pformat(value, indent=4, width=100, sort_dicts=False)


def standalone_script(config: Config, *, name: str) -> str:
    m, q, lo, d, t = config.model, config.quantization, config.lora, config.data, config.training
    model_path, tokenizer_path = m.name_or_path, m.tokenizer_name_or_path or m.name_or_path
    data_path, eval_path = d.path, d.eval_path
    if DEMO_MODEL in (model_path, tokenizer_path) or DEMO_DATA in (data_path, eval_path):
        demo_model, demo_data = demo_paths()
        model_path, tokenizer_path, data_path, eval_path = (
            demo_model if p == DEMO_MODEL else demo_data if p == DEMO_DATA else p
            for p in (model_path, tokenizer_path, data_path, eval_path))
    safe = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "run"
    settings = {
        "__MODEL__": {
            "name_or_path": model_path, "tokenizer": tokenizer_path, "dtype": m.dtype,
            "trust_remote_code": m.trust_remote_code, "attn_implementation": m.attn_implementation,
            "from_scratch": m.from_scratch, "model_type": m.model_type, "vocab_size": m.vocab_size,
            "architecture": {k: getattr(m, k) for k in ARCH_KEYS},
            "hidden_dropout": m.hidden_dropout, "attention_dropout": m.attention_dropout,
        },
        "__QUANTIZATION__": q.model_dump(mode="json"),
        "__LORA__": {
            "enabled": lo.enabled, "merge_after_training": lo.merge_after_training,
            "config": {"r": lo.r, "lora_alpha": lo.lora_alpha, "lora_dropout": lo.lora_dropout,
                       "target_modules": lo.target_modules, "bias": lo.bias, "use_rslora": lo.use_rslora,
                       "use_dora": lo.use_dora},
        },
        "__DATA__": dict(d.model_dump(mode="json"), path=data_path, eval_path=eval_path),
        "__EARLY_STOPPING__": {"patience": t.early_stopping_patience, "threshold": t.early_stopping_threshold},
        "__TRAINING_ARGS__": training_arguments(config, output_dir="", run_name=name, cuda=target_cuda(config),
                                                has_eval=bool(d.eval_path) or d.eval_split > 0),
    }
    # The prompt format comes from the one renderer, so the script trains on the same text as tunedeck.
    settings.update({"__PROMPT_WITH_INPUT__": prompts.PROMPT_WITH_INPUT, "__PROMPT_NO_INPUT__": prompts.PROMPT_NO_INPUT})
    text = TEMPLATE.read_text(encoding="utf-8")
    for placeholder, value in settings.items():
        text = text.replace(placeholder, _literal(value))
    text = text.replace("__NAME__", name).replace("__SAFE__", safe)
    return text.replace("__PRESET_BLOCK__", f"# Target: {describe(config)}; the script uses a GPU when it finds one.\n"
                        "# The tunedeck preset this script was exported from (read by `tunedeck import`).\n"
                        + block.commented(config).rstrip())
