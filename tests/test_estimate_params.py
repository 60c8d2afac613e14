"""Exact parameter counts against real transformers/peft models built on CPU from tiny configs."""

from __future__ import annotations

import json
import warnings

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from runner.estimate import EstimateError, UnknownModel, estimate  # noqa: E402
from runner.estimate.known_models import KNOWN_MODELS  # noqa: E402
from runner.schema import Config  # noqa: E402

# Odd sizes on purpose: GQA, head_dim != hidden/heads, biases, tied and untied heads, learned positions.
TINY = {
    "llama": dict(model_type="llama", vocab_size=101, hidden_size=32, intermediate_size=56, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=12, attention_bias=True, mlp_bias=True,
                  tie_word_embeddings=False),
    "mistral": dict(model_type="mistral", vocab_size=97, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=1),
    "qwen2": dict(model_type="qwen2", vocab_size=103, hidden_size=32, intermediate_size=40, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True),
    "gemma2": dict(model_type="gemma2", vocab_size=89, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, head_dim=16),
    "phi3": dict(model_type="phi3", vocab_size=91, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, pad_token_id=0, eos_token_id=1, bos_token_id=1),
    "gpt2": dict(model_type="gpt2", vocab_size=83, n_embd=32, n_layer=2, n_head=4, n_positions=64),
}
# Per family: targets that exist in it (peft fails on names that match nothing).
TARGET_SETS = {
    "gpt2": [["c_attn"], ["c_attn", "c_proj"], ["mlp.c_fc", "h.1.attn.c_proj"]],
    "phi3": [["qkv_proj"], ["o_proj", "gate_up_proj", "down_proj"], ["layers.1.self_attn.qkv_proj", "lm_head"]],
}
LLAMA_LIKE_TARGETS = [["q_proj", "v_proj"], ["q_proj", "k_proj", "v_proj", "o_proj"], ["gate_proj", "down_proj"],
                      ["layers.0.self_attn.o_proj", "embed_tokens"]]


def _model_dir(tmp_path, family):
    d = tmp_path / family
    d.mkdir()
    (d / "config.json").write_text(json.dumps(TINY[family]))
    return d


def _real_model(family):
    cfg = transformers.AutoConfig.for_model(**TINY[family])
    torch.manual_seed(0)
    return transformers.AutoModelForCausalLM.from_config(cfg)


def _counts(model):
    return (sum(p.numel() for p in model.parameters()),
            sum(p.numel() for p in model.parameters() if p.requires_grad))


@pytest.mark.parametrize("family", sorted(TINY))
def test_full_fine_tune_counts_match_real_model(tmp_path, family):
    config = Config(model={"name_or_path": str(_model_dir(tmp_path, family))})
    est = estimate(config)
    total, trainable = _counts(_real_model(family))
    assert (est.params_total, est.params_trainable) == (total, trainable)
    assert est.arch_source.startswith("config.json in")


@pytest.mark.parametrize("family", sorted(TINY))
@pytest.mark.parametrize("variant", ["all-linear", "dora", "bias-all", "bias-lora-only", "targets"])
def test_lora_counts_match_peft(tmp_path, family, variant):
    model_dir = _model_dir(tmp_path, family)
    target_sets = TARGET_SETS.get(family, LLAMA_LIKE_TARGETS)
    cases = {
        "all-linear": [("all-linear", False, "none")],
        "dora": [("all-linear", True, "none"), (target_sets[0], True, "none")],
        "bias-all": [("all-linear", False, "all")],
        "bias-lora-only": [(target_sets[0], False, "lora_only"), ("all-linear", False, "lora_only")],
        "targets": [(t, False, "none") for t in target_sets],
    }[variant]
    for targets, dora, bias in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = peft.get_peft_model(_real_model(family), peft.LoraConfig(
                r=4, lora_alpha=8, target_modules=targets, use_dora=dora, bias=bias))
        config = Config(model={"name_or_path": str(model_dir)},
                        lora={"enabled": True, "r": 4, "target_modules": targets, "use_dora": dora, "bias": bias})
        est = estimate(config)
        assert (est.params_total, est.params_trainable) == _counts(model), (targets, dora, bias)


@pytest.mark.parametrize("model_id", sorted({
    "meta-llama/llama-3.2-1b", "meta-llama/llama-3.2-3b", "meta-llama/llama-3.1-8b", "meta-llama/llama-3.1-70b",
    "mistralai/mistral-7b-v0.1", "mistralai/mistral-7b-v0.3", "qwen/qwen2.5-0.5b", "qwen/qwen2.5-7b",
    "qwen/qwen2.5-72b", "google/gemma-2-2b", "google/gemma-2-9b", "google/gemma-2-27b",
    "microsoft/phi-3-mini-4k-instruct", "gpt2", "gpt2-xl",
}))
def test_builtin_table_matches_real_architecture(model_id, monkeypatch, tmp_path):
    """Every table entry, built at full size on the meta device (no memory, no download)."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache: the table must answer
    entry = {k: v for k, v in KNOWN_MODELS[model_id].items() if k != "dtype"}
    cfg = transformers.AutoConfig.for_model(**entry)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    est = estimate(Config(model={"name_or_path": model_id}))
    assert est.params_total == sum(p.numel() for p in model.parameters())
    assert est.arch_source.startswith("built-in table")


def test_published_sizes():
    """Sanity: the table reproduces the parameter counts the model cards publish."""
    for model_id, expected in [("meta-llama/Llama-3.1-8B", 8_030_261_248), ("Qwen/Qwen2.5-0.5B", 494_032_768),
                               ("gpt2", 124_439_808), ("meta-llama/Llama-3.2-1B", 1_235_814_400)]:
        assert estimate(Config(model={"name_or_path": model_id})).params_total == expected


def test_tiny_demo_uses_runner_spec():
    from runner.demo_spec import demo_param_count

    est = estimate(Config())
    assert est.params_total == demo_param_count()


def test_from_scratch_counts_match_real_model():
    config = Config(model={"from_scratch": True, "model_type": "gpt2", "num_hidden_layers": 2, "hidden_size": 64,
                           "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 4,
                           "vocab_size": 300, "max_position_embeddings": 128})
    cfg = transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, n_inner=128, vocab_size=300, n_positions=128)
    est = estimate(config)
    assert est.params_total == sum(p.numel() for p in transformers.GPT2LMHeadModel(cfg).parameters())
    assert est.arch_source == "from-scratch fields"


def test_hf_cache_config_is_used(monkeypatch, tmp_path):
    snap = tmp_path / "models--someorg--tiny" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps(TINY["qwen2"]))
    (tmp_path / "models--someorg--tiny" / "refs").mkdir()
    (tmp_path / "models--someorg--tiny" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    est = estimate(Config(model={"name_or_path": "someorg/tiny"}))
    assert est.arch_source.startswith("HF cache")
    assert est.params_total == _counts(_real_model("qwen2"))[0]


def test_unknown_model_names_the_missing_numbers(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(UnknownModel) as err:
        estimate(Config(model={"name_or_path": "nobody/unheard-of-13b"}))
    text = str(err.value)
    assert "nobody/unheard-of-13b" in text and "model.hidden_size" in text and "model.num_hidden_layers" in text


def test_unsupported_family_is_reported(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mamba", "hidden_size": 8}))
    with pytest.raises(UnknownModel, match="mamba"):
        estimate(Config(model={"name_or_path": str(tmp_path)}))


def test_target_modules_matching_nothing_suggest_a_name(tmp_path):
    config = Config(model={"name_or_path": str(_model_dir(tmp_path, "llama"))},
                    lora={"enabled": True, "target_modules": ["q_prj"]})
    with pytest.raises(EstimateError, match="did you mean 'q_proj'"):
        estimate(config)
