"""Find the architecture numbers of the model a config names, without loading it.

In order: the from-scratch fields, the built-in tiny demo, a local directory's config.json,
a config.json already in the local Hugging Face cache, the built-in offline table. Nothing is
downloaded; config.json is read as JSON, never through transformers. When none of these knows
the model, `UnknownModel` says so and names the numbers to supply.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from runner.demo_spec import DEMO_MODEL, TINY_DEMO_CONFIG
from runner.schema import Config

from .known_models import lookup

FAMILIES = ("llama", "mistral", "qwen2", "gemma2", "phi3", "gpt2")
# The from-scratch fields a user must fill in when the model is unknown.
ARCH_FIELDS = ("model.model_type", "model.num_hidden_layers", "model.hidden_size", "model.intermediate_size",
               "model.num_attention_heads", "model.num_key_value_heads", "model.vocab_size")
# Checkpoint dtypes as config.json spells them, mapped to the names the schema uses.
_DTYPE_NAMES = {"bfloat16": "bfloat16", "float16": "float16", "float32": "float32", "half": "float16",
                "float": "float32", "fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}


class EstimateError(ValueError):
    """A config the estimator cannot estimate; the message says what to change."""


class UnknownModel(EstimateError):
    """The model's architecture could not be found offline."""


@dataclass(frozen=True)
class Architecture:
    family: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    tie_word_embeddings: bool
    attention_bias: bool = False  # llama-style: bias on q/k/v/o (qwen2: q/k/v always)
    mlp_bias: bool = False
    max_position_embeddings: int = 0  # only gpt2 turns it into parameters (learned positions)
    final_logit_softcapping: float | None = None  # gemma2: tanh soft cap applied to the logits
    dtype: str = "bfloat16"  # what model.dtype="auto" loads
    source: str = ""


def resolve(config: Config) -> Architecture:
    """The architecture `config` trains; raises UnknownModel when it cannot be found offline."""
    m = config.model
    if m.from_scratch:
        return _from_scratch(config)
    return _resolve_name(m.name_or_path.strip())


@lru_cache(maxsize=64)
def _resolve_cached(name: str, stamp: float) -> Architecture:
    if name == DEMO_MODEL:
        return from_config_json(TINY_DEMO_CONFIG, f"built-in demo model ({DEMO_MODEL})")
    local = Path(name).expanduser()
    if local.is_dir():
        cfg = local / "config.json"
        if not cfg.is_file():
            raise UnknownModel(f"{name} is a directory without config.json; point model.name_or_path at the "
                               "directory holding the model's config.json")
        return from_config_json(_read_json(cfg), f"config.json in {local}")
    cached = _hf_cached_config(name)
    if cached is not None:
        return from_config_json(_read_json(cached), f"HF cache ({cached})")
    known = lookup(name)
    if known is not None:
        return from_config_json(known, f"built-in table ({name})")
    raise UnknownModel(
        f"model {name!r} is not a local directory, not in the local Hugging Face cache and not in the "
        "built-in table, so its size is unknown. Download just its config "
        f"(`huggingface-cli download {name} config.json`), point model.name_or_path at a local "
        "copy, or give the numbers in the from-scratch fields: " + ", ".join(ARCH_FIELDS)
    )


def _resolve_name(name: str) -> Architecture:
    # A local directory's config.json may change between calls: key the cache on its mtime.
    try:
        stamp = (Path(name).expanduser() / "config.json").stat().st_mtime if not name.startswith("tunedeck:") else 0.0
    except OSError:
        stamp = 0.0
    return _resolve_cached(name, stamp)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UnknownModel(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise UnknownModel(f"{path} does not hold a JSON object")
    return data


def _hf_cached_config(repo_id: str) -> Path | None:
    """config.json of a hub id if a previous download left it in the local cache (no network)."""
    if repo_id.count("/") > 1 or not repo_id or repo_id.startswith((".", "/", "~")):
        return None
    if not _has_hub_cache():
        return None
    try:
        from huggingface_hub import try_to_load_from_cache  # light, no torch; imported only when a cache exists
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # an invalid repo id and similar: not in the cache
        return None
    return Path(found) if isinstance(found, str) else None


def _has_hub_cache() -> bool:
    """Whether a Hugging Face hub cache directory exists (skips importing huggingface_hub otherwise)."""
    if os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return True
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface")
    return os.path.isdir(os.path.join(home, "hub"))


def from_config_json(cfg: dict[str, Any], source: str) -> Architecture:
    """An Architecture from a transformers config.json dict (keys as transformers writes them)."""
    family = cfg.get("model_type")
    if family not in FAMILIES:
        raise UnknownModel(
            f"{source}: model_type {family!r} is not one the estimator models (supported: "
            f"{', '.join(FAMILIES)}); give an equivalent architecture in the from-scratch fields")
    try:
        if family == "gpt2":
            hidden = int(cfg.get("n_embd", 768))
            heads = int(cfg.get("n_head", 12))
            inner = cfg.get("n_inner")
            return Architecture(
                family=family, vocab_size=int(cfg.get("vocab_size", 50257)), hidden_size=hidden,
                intermediate_size=int(inner) if inner else 4 * hidden,  # gpt2's MLP is 4x wide unless set
                num_layers=int(cfg.get("n_layer", 12)), num_heads=heads, num_kv_heads=heads,
                head_dim=hidden // heads, tie_word_embeddings=bool(cfg.get("tie_word_embeddings", True)),
                attention_bias=True, mlp_bias=True, max_position_embeddings=int(cfg.get("n_positions", 1024)),
                dtype=_dtype(cfg, "float32"), source=source)
        hidden = int(cfg["hidden_size"])
        heads = int(cfg["num_attention_heads"])
        default_head_dim = 256 if family == "gemma2" else hidden // heads  # Gemma2Config defaults head_dim to 256
        return Architecture(
            family=family, vocab_size=int(cfg["vocab_size"]), hidden_size=hidden,
            intermediate_size=int(cfg["intermediate_size"]), num_layers=int(cfg["num_hidden_layers"]),
            num_heads=heads, num_kv_heads=int(cfg.get("num_key_value_heads") or heads),
            head_dim=int(cfg.get("head_dim") or default_head_dim),
            tie_word_embeddings=bool(cfg.get("tie_word_embeddings", family == "gemma2")),
            attention_bias=family == "qwen2" or bool(cfg.get("attention_bias", False)),
            mlp_bias=bool(cfg.get("mlp_bias", False)) if family == "llama" else False,
            max_position_embeddings=int(cfg.get("max_position_embeddings") or 0),
            final_logit_softcapping=(cfg.get("final_logit_softcapping", 30.0) if family == "gemma2" else None),
            dtype=_dtype(cfg, "float32" if family == "gemma2" else "bfloat16"), source=source)
    except KeyError as exc:
        raise UnknownModel(f"{source}: config.json lacks {exc.args[0]!r}, needed to size the model") from exc


def _dtype(cfg: dict[str, Any], fallback: str) -> str:
    raw = cfg.get("dtype") or cfg.get("torch_dtype")
    return _DTYPE_NAMES.get(str(raw), fallback) if raw else fallback


def _from_scratch(config: Config) -> Architecture:
    m = config.model
    fields = dict(model_type=m.model_type, vocab_size=m.vocab_size, num_hidden_layers=m.num_hidden_layers,
                  num_attention_heads=m.num_attention_heads, num_key_value_heads=m.num_key_value_heads,
                  max_position_embeddings=m.max_position_embeddings, dtype="float32")
    if m.model_type == "gpt2":
        fields.update(n_embd=m.hidden_size, n_layer=m.num_hidden_layers, n_head=m.num_attention_heads,
                      n_inner=m.intermediate_size, n_positions=m.max_position_embeddings)
    else:
        # A fresh model splits hidden_size evenly over the heads (also gemma2, whose config default differs).
        fields.update(hidden_size=m.hidden_size, intermediate_size=m.intermediate_size,
                      head_dim=m.hidden_size // m.num_attention_heads)
    return from_config_json(fields, "from-scratch fields")
