"""Build (once, then cache) the `tunedeck:tiny-demo` model and tokenizer, and find the demo data.

Nothing is downloaded: the tokenizer is a byte-level BPE trained on the bundled demo data and
the model is a randomly initialised llama of the size in runner.demo_spec. Imported only by
the training process.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path

from runner.demo_spec import DEMO_TOKENIZER, TINY_DEMO_CONFIG, demo_data_file, demo_model_cache


def demo_model_dir() -> Path:
    """The cached model directory, built on first use (safe when several processes race)."""
    target = demo_model_cache()
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".tiny-demo.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder; the others wait, then reuse its result
        if not (target / "config.json").is_file():
            tmp = Path(tempfile.mkdtemp(prefix=".tiny-demo-", dir=target.parent))
            try:
                build_demo_model(tmp)
                if target.exists():
                    shutil.rmtree(target)
                os.replace(tmp, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def _training_texts() -> list[str]:
    """Every rendering of the demo data, so each format tokenizes compactly."""
    from runner.prompts import render_instruction

    texts = []
    with open(demo_data_file(), encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            texts.append(row["text"])
            prompt, answer = render_instruction(row["instruction"], row["input"], row["output"])
            texts.append(prompt + answer)
            texts.extend(f"{m['role']}: {m['content']}" for m in row["messages"])
    return texts


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    spec = DEMO_TOKENIZER
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec["vocab_size"],
        special_tokens=spec["special_tokens"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: nothing is unknown
        show_progress=False,
    )
    tok.train_from_iterator(_training_texts(), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=spec["bos_token"],
        eos_token=spec["eos_token"],
        pad_token=spec["pad_token"],
        model_max_length=spec["model_max_length"],
    )
    fast.chat_template = spec["chat_template"]
    return fast


def build_demo_model(out_dir: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    tokenizer = build_tokenizer()
    arch = dict(TINY_DEMO_CONFIG)
    model_type = arch.pop("model_type")
    arch.pop("dtype", None)
    config = AutoConfig.for_model(
        model_type,
        **arch,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)  # the same random init on every machine
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
