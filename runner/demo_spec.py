"""The built-in demo model `tunedeck:tiny-demo`: its architecture and tokenizer, as plain data.

Kept free of torch so the estimator and the TUI can read the numbers; `runner.train_demo`
builds (and caches) the real model and tokenizer from them on first use.
"""

from __future__ import annotations

from pathlib import Path

# The one definition of the demo's ids; the schema defaults, the estimator, the trainer and the
# exporters import these (this module needs neither torch nor the schema, so anything may).
DEMO_MODEL = "tunedeck:tiny-demo"  # built on first use by runner.train_demo
DEMO_DATA = "tunedeck:demo"  # runner/data/demo.jsonl, shipped with the package

# A ~0.9M-parameter llama: 4 blocks of (4*128*128 attention + 3*128*384 MLP) weights plus a
# 512x128 embedding tied to the output head. Small enough to train in seconds on 2 CPU cores.
TINY_DEMO_CONFIG: dict = {
    "model_type": "llama",
    "vocab_size": 512,
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 512,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "tie_word_embeddings": True,
    "initializer_range": 0.02,
    "dtype": "float32",
}

# A byte-level BPE trained on the bundled demo data, so any text tokenizes without an unknown token.
DEMO_TOKENIZER: dict = {
    "kind": "byte_level_bpe",
    "vocab_size": TINY_DEMO_CONFIG["vocab_size"],
    "bos_token": "<s>",
    "eos_token": "</s>",
    "pad_token": "<pad>",
    "special_tokens": ["<pad>", "<s>", "</s>"],
    "model_max_length": TINY_DEMO_CONFIG["max_position_embeddings"],
    # Plain role-tagged turns; `add_generation_prompt` opens an assistant turn.
    "chat_template": (
        "{% for message in messages %}"
        "{{ '<s>' + message['role'] + ': ' + message['content'] + '</s>\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<s>assistant: ' }}{% endif %}"
    ),
}

def demo_data_file() -> Path:
    """The bundled demo dataset behind DEMO_DATA."""
    return Path(__file__).resolve().parent / "data" / "demo.jsonl"


# Bump when the spec or the bundled data changes so cached copies are rebuilt.
DEMO_CACHE_VERSION = 1


def demo_model_cache() -> Path:
    """Where runner.train_demo keeps the built demo model and tokenizer (it may not exist yet)."""
    from runner.paths import cache_dir

    return cache_dir() / "models" / f"tiny-demo-v{DEMO_CACHE_VERSION}"


def demo_param_count() -> int:
    """Parameters of the tiny demo model (embedding tied to the head, RMSNorm weights included)."""
    c = TINY_DEMO_CONFIG
    h, i, n = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    head_dim = h // c["num_attention_heads"]
    kv = c["num_key_value_heads"] * head_dim
    attention = h * h + 2 * h * kv + h * h  # q, k, v, o projections (no biases)
    mlp = 3 * h * i  # gate, up, down projections
    norms = 2 * h  # input and post-attention RMSNorm
    embedding = c["vocab_size"] * h  # shared with the output head (tied)
    return n * (attention + mlp + norms) + embedding + h  # + final norm
