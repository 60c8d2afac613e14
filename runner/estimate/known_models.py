"""Offline architecture table: the numbers from each model's public config.json.

Used when a hub id is neither a local directory nor in the local Hugging Face cache, so the
estimate works on a box with no network. Keys are lower-case hub ids; values use the
config.json key names (read by `architecture.from_config_json`), plus `dtype` (the checkpoint's
stored dtype, what `model.dtype = "auto"` loads).
"""

from __future__ import annotations

from typing import Any


def _llama3(hidden: int, inter: int, layers: int, heads: int, tied: bool) -> dict[str, Any]:
    return dict(model_type="llama", vocab_size=128256, hidden_size=hidden, intermediate_size=inter,
                num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=8,
                head_dim=hidden // heads, tie_word_embeddings=tied, max_position_embeddings=131072,
                dtype="bfloat16")


def _qwen25(hidden: int, inter: int, layers: int, heads: int, kv: int, vocab: int, tied: bool) -> dict[str, Any]:
    return dict(model_type="qwen2", vocab_size=vocab, hidden_size=hidden, intermediate_size=inter,
                num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
                tie_word_embeddings=tied, max_position_embeddings=32768, dtype="bfloat16")


def _gemma2(hidden: int, inter: int, layers: int, heads: int, kv: int, head_dim: int) -> dict[str, Any]:
    return dict(model_type="gemma2", vocab_size=256000, hidden_size=hidden, intermediate_size=inter,
                num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
                head_dim=head_dim, tie_word_embeddings=True, max_position_embeddings=8192,
                final_logit_softcapping=30.0, dtype="float32")


def _mistral(vocab: int) -> dict[str, Any]:
    return dict(model_type="mistral", vocab_size=vocab, hidden_size=4096, intermediate_size=14336,
                num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                tie_word_embeddings=False, max_position_embeddings=32768, dtype="bfloat16")


def _phi3_mini(max_positions: int) -> dict[str, Any]:
    return dict(model_type="phi3", vocab_size=32064, hidden_size=3072, intermediate_size=8192,
                num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                tie_word_embeddings=False, max_position_embeddings=max_positions, dtype="bfloat16")


def _gpt2(n_embd: int, n_layer: int, n_head: int) -> dict[str, Any]:
    return dict(model_type="gpt2", vocab_size=50257, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                n_inner=None, n_positions=1024, tie_word_embeddings=True, dtype="float32")


_LLAMA_1B = _llama3(2048, 8192, 16, 32, tied=True)
_LLAMA_3B = _llama3(3072, 8192, 28, 24, tied=True)
_LLAMA_8B = _llama3(4096, 14336, 32, 32, tied=False)
_LLAMA_70B = _llama3(8192, 28672, 80, 64, tied=False)

_QWEN = {
    "0.5B": _qwen25(896, 4864, 24, 14, 2, 151936, tied=True),
    "1.5B": _qwen25(1536, 8960, 28, 12, 2, 151936, tied=True),
    "3B": _qwen25(2048, 11008, 36, 16, 2, 151936, tied=True),
    "7B": _qwen25(3584, 18944, 28, 28, 4, 152064, tied=False),
    "14B": _qwen25(5120, 13824, 48, 40, 8, 152064, tied=False),
    "32B": _qwen25(5120, 27648, 64, 40, 8, 152064, tied=False),
    "72B": _qwen25(8192, 29568, 80, 64, 8, 152064, tied=False),
}

KNOWN_MODELS: dict[str, dict[str, Any]] = {}


def _add(ids: list[str], arch: dict[str, Any]) -> None:
    for model_id in ids:
        KNOWN_MODELS[model_id.lower()] = arch


for _v in ("3.2",):
    _add([f"meta-llama/Llama-{_v}-1B", f"meta-llama/Llama-{_v}-1B-Instruct"], _LLAMA_1B)
    _add([f"meta-llama/Llama-{_v}-3B", f"meta-llama/Llama-{_v}-3B-Instruct"], _LLAMA_3B)
_add(["meta-llama/Meta-Llama-3-8B", "meta-llama/Meta-Llama-3-8B-Instruct", "meta-llama/Llama-3.1-8B",
      "meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Meta-Llama-3.1-8B", "meta-llama/Meta-Llama-3.1-8B-Instruct"],
     _LLAMA_8B)
_add(["meta-llama/Meta-Llama-3-70B", "meta-llama/Meta-Llama-3-70B-Instruct", "meta-llama/Llama-3.1-70B",
      "meta-llama/Llama-3.1-70B-Instruct", "meta-llama/Meta-Llama-3.1-70B", "meta-llama/Meta-Llama-3.1-70B-Instruct",
      "meta-llama/Llama-3.3-70B-Instruct"], _LLAMA_70B)
_add(["mistralai/Mistral-7B-v0.1", "mistralai/Mistral-7B-Instruct-v0.1", "mistralai/Mistral-7B-Instruct-v0.2"],
     _mistral(32000))
_add(["mistralai/Mistral-7B-v0.3", "mistralai/Mistral-7B-Instruct-v0.3"], _mistral(32768))
for _size, _arch in _QWEN.items():
    _add([f"Qwen/Qwen2.5-{_size}", f"Qwen/Qwen2.5-{_size}-Instruct"], _arch)
_add(["google/gemma-2-2b", "google/gemma-2-2b-it"], _gemma2(2304, 9216, 26, 8, 4, 256))
_add(["google/gemma-2-9b", "google/gemma-2-9b-it"], _gemma2(3584, 14336, 42, 16, 8, 256))
_add(["google/gemma-2-27b", "google/gemma-2-27b-it"], _gemma2(4608, 36864, 46, 32, 16, 128))
_add(["microsoft/Phi-3-mini-4k-instruct"], _phi3_mini(4096))
_add(["microsoft/Phi-3-mini-128k-instruct"], _phi3_mini(131072))
_add(["gpt2", "openai-community/gpt2"], _gpt2(768, 12, 12))
_add(["gpt2-medium", "openai-community/gpt2-medium"], _gpt2(1024, 24, 16))
_add(["gpt2-large", "openai-community/gpt2-large"], _gpt2(1280, 36, 20))
_add(["gpt2-xl", "openai-community/gpt2-xl"], _gpt2(1600, 48, 25))
_add(["distilgpt2", "distilbert/distilgpt2"], _gpt2(768, 6, 12))


def lookup(model_id: str) -> dict[str, Any] | None:
    """The table entry for a hub id (case-insensitive), or None."""
    return KNOWN_MODELS.get(model_id.strip().lower())
