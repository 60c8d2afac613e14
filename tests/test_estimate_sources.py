"""Where the estimator finds a model's numbers (from-scratch fields, a local config.json, the Hugging Face
cache, the built-in table), what each family's config.json defaults to, the messages when it cannot,
and the measured peaks of earlier runs (calibration)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.estimate import UnknownModel, estimate, last_measured_peak, memory_signature
from runner.estimate.architecture import (_dtype, _has_hub_cache, _hf_cached_config, _resolve_cached, from_config_json,
                                          resolve)
from runner.estimate.calibration import _scan
from runner.schema import Config


@pytest.fixture(autouse=True)
def _no_hub_cache(monkeypatch, tmp_path):
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


# ---- config.json as each family writes it ------------------------------------------------------------
def test_gpt2_defaults_are_gpt2_small():
    arch = from_config_json({"model_type": "gpt2"}, "src")
    assert (arch.vocab_size, arch.hidden_size, arch.intermediate_size, arch.num_layers, arch.num_heads,
            arch.num_kv_heads, arch.head_dim) == (50257, 768, 3072, 12, 12, 12, 64)
    assert arch.tie_word_embeddings is True and arch.attention_bias and arch.mlp_bias
    assert (arch.max_position_embeddings, arch.dtype, arch.source, arch.family) == (1024, "float32", "src", "gpt2")
    custom = from_config_json({"model_type": "gpt2", "n_embd": 64, "n_head": 4, "n_layer": 3, "n_inner": 100,
                               "vocab_size": 500, "n_positions": 32, "tie_word_embeddings": False,
                               "torch_dtype": "float16"}, "s")
    assert (custom.vocab_size, custom.hidden_size, custom.intermediate_size, custom.num_layers, custom.num_heads,
            custom.head_dim, custom.max_position_embeddings) == (500, 64, 100, 3, 4, 16, 32)
    assert custom.tie_word_embeddings is False and custom.dtype == "float16"


def test_llama_style_defaults():
    arch = from_config_json({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "vocab_size": 10,
                             "intermediate_size": 128, "num_hidden_layers": 2}, "s")
    assert (arch.num_kv_heads, arch.head_dim, arch.tie_word_embeddings) == (4, 16, False)
    assert (arch.attention_bias, arch.mlp_bias, arch.max_position_embeddings) == (False, False, 0)
    assert arch.final_logit_softcapping is None and arch.dtype == "bfloat16"
    biased = from_config_json({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "vocab_size": 10,
                               "intermediate_size": 128, "num_hidden_layers": 2, "attention_bias": True,
                               "mlp_bias": True, "num_key_value_heads": 2, "head_dim": 8,
                               "max_position_embeddings": 4096, "tie_word_embeddings": True}, "s")
    assert (biased.attention_bias, biased.mlp_bias, biased.num_kv_heads, biased.head_dim) == (True, True, 2, 8)
    assert biased.max_position_embeddings == 4096 and biased.tie_word_embeddings is True
    mistral = from_config_json({"model_type": "mistral", "hidden_size": 64, "num_attention_heads": 4,
                                "vocab_size": 10, "intermediate_size": 128, "num_hidden_layers": 2,
                                "mlp_bias": True}, "s")
    assert mistral.mlp_bias is False  # only llama's config has an MLP bias switch
    qwen = from_config_json({"model_type": "qwen2", "hidden_size": 64, "num_attention_heads": 4, "vocab_size": 10,
                             "intermediate_size": 128, "num_hidden_layers": 2}, "s")
    assert qwen.attention_bias is True  # qwen2 always has q/k/v biases


def test_gemma2_defaults():
    arch = from_config_json({"model_type": "gemma2", "hidden_size": 64, "num_attention_heads": 4, "vocab_size": 10,
                             "intermediate_size": 128, "num_hidden_layers": 2}, "s")
    assert (arch.head_dim, arch.tie_word_embeddings, arch.final_logit_softcapping, arch.dtype) == (
        256, True, 30.0, "float32")
    capped = from_config_json({"model_type": "gemma2", "hidden_size": 64, "num_attention_heads": 4, "vocab_size": 10,
                               "intermediate_size": 128, "num_hidden_layers": 2, "final_logit_softcapping": 50.0}, "s")
    assert capped.final_logit_softcapping == 50.0


@pytest.mark.parametrize("raw,expected", [("half", "float16"), ("bf16", "bfloat16"), ("float", "float32"),
                                          ("fp32", "float32"), ("fp16", "float16"), ("float16", "float16"),
                                          ("int8", "bfloat16")])
def test_checkpoint_dtype_names(raw, expected):
    assert _dtype({"dtype": raw}, "bfloat16") == expected
    assert _dtype({"torch_dtype": raw}, "bfloat16") == expected
    assert _dtype({}, "float32") == "float32" and _dtype({"dtype": None, "torch_dtype": "fp16"}, "x") == "float16"


def test_missing_numbers_and_unknown_families_are_named():
    with pytest.raises(UnknownModel) as err:
        from_config_json({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4}, "config.json in /m")
    assert str(err.value) == "config.json in /m: config.json lacks 'vocab_size', needed to size the model"
    with pytest.raises(UnknownModel) as err:
        from_config_json({"model_type": "mamba"}, "src")
    assert str(err.value) == ("src: model_type 'mamba' is not one the estimator models (supported: llama, mistral, "
                              "qwen2, gemma2, phi3, gpt2); give an equivalent architecture in the from-scratch fields")


# ---- where the numbers come from ---------------------------------------------------------------------
def test_from_scratch_fields():
    config = Config(model={"from_scratch": True, "model_type": "llama", "num_hidden_layers": 3, "hidden_size": 96,
                           "intermediate_size": 200, "num_attention_heads": 6, "num_key_value_heads": 2,
                           "vocab_size": 700, "max_position_embeddings": 256})
    arch = resolve(config)
    assert (arch.family, arch.num_layers, arch.hidden_size, arch.intermediate_size, arch.num_heads,
            arch.num_kv_heads, arch.head_dim, arch.vocab_size, arch.max_position_embeddings) == (
        "llama", 3, 96, 200, 6, 2, 16, 700, 256)
    assert arch.dtype == "float32" and arch.source == "from-scratch fields"
    gemma = resolve(config.model_copy(update={"model": config.model.model_copy(update={"model_type": "gemma2"})}))
    assert gemma.head_dim == 16  # a fresh model splits hidden_size over the heads, not gemma2's 256
    gpt2 = resolve(Config(model={"from_scratch": True, "model_type": "gpt2", "num_hidden_layers": 2,
                                 "hidden_size": 64, "intermediate_size": 100, "num_attention_heads": 4,
                                 "num_key_value_heads": 4, "vocab_size": 300, "max_position_embeddings": 128}))
    assert (gpt2.hidden_size, gpt2.num_layers, gpt2.num_heads, gpt2.intermediate_size, gpt2.vocab_size,
            gpt2.max_position_embeddings) == (64, 2, 4, 100, 300, 128)


def test_local_directory(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    with pytest.raises(UnknownModel) as err:
        resolve(Config(model={"name_or_path": str(model)}))
    assert str(err.value) == (f"{model} is a directory without config.json; point model.name_or_path at the "
                              "directory holding the model's config.json")
    (model / "config.json").write_text("{not json")
    with pytest.raises(UnknownModel, match=r"^cannot read .*config\.json: "):
        resolve(Config(model={"name_or_path": str(model)}))
    (model / "config.json").write_text("[1, 2]")
    with pytest.raises(UnknownModel) as err:
        resolve(Config(model={"name_or_path": str(model)}))
    assert str(err.value) == f"{model / 'config.json'} does not hold a JSON object"
    (model / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2}))
    arch = resolve(Config(model={"name_or_path": f"  {model}  "}))  # surrounding spaces are ignored
    assert arch.num_layers == 2 and arch.source == f"config.json in {model}"
    # an edited config.json is read again
    (model / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 5}))
    import os
    os.utime(model / "config.json", (1_000_000, 1_000_000))
    assert resolve(Config(model={"name_or_path": str(model)})).num_layers == 5


def test_built_in_table_and_demo():
    arch = resolve(Config(model={"name_or_path": "Meta-Llama/Llama-3.2-1B"}))
    assert arch.source == "built-in table (Meta-Llama/Llama-3.2-1B)" and arch.hidden_size == 2048
    demo = resolve(Config(model={"name_or_path": "tunedeck:tiny-demo"}))
    assert demo.source == "built-in demo model (tunedeck:tiny-demo)"


def test_unknown_model_message():
    with pytest.raises(UnknownModel) as err:
        resolve(Config(model={"name_or_path": "nobody/model-x"}))
    assert str(err.value) == (
        "model 'nobody/model-x' is not a local directory, not in the local Hugging Face cache and not in the "
        "built-in table, so its size is unknown. Download just its config (`huggingface-cli download "
        "nobody/model-x config.json`), point model.name_or_path at a local copy, or give the numbers in the "
        "from-scratch fields: model.model_type, model.num_hidden_layers, model.hidden_size, "
        "model.intermediate_size, model.num_attention_heads, model.num_key_value_heads, model.vocab_size")


def _cache_with(root: Path, repo: str, cfg: dict) -> None:
    folder = root / ("models--" + repo.replace("/", "--"))
    snap = folder / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps(cfg))
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("abc")


def test_hub_cache_is_found_by_each_variable(monkeypatch, tmp_path):
    assert _has_hub_cache() is False
    monkeypatch.setenv("HUGGINGFACE_HUB_CACHE", str(tmp_path / "x"))
    assert _has_hub_cache() is True
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "y"))
    assert _has_hub_cache() is True
    monkeypatch.delenv("HF_HUB_CACHE")
    (tmp_path / "hf" / "hub").mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert _has_hub_cache() is True
    monkeypatch.delenv("HF_HOME")
    (tmp_path / "xdg" / "huggingface" / "hub").mkdir(parents=True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _has_hub_cache() is True
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty"))
    assert _has_hub_cache() is False
    monkeypatch.delenv("XDG_CACHE_HOME")
    (tmp_path / "home" / ".cache" / "huggingface" / "hub").mkdir(parents=True)
    assert _has_hub_cache() is True


def test_hub_cache_lookup(monkeypatch, tmp_path):
    cfg = {"model_type": "gpt2", "n_layer": 7}
    _cache_with(tmp_path, "sourcesorg/cached-gpt2", cfg)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    _resolve_cached.cache_clear()  # the resolver caches hub ids by name for the process; this cache is new
    found = _hf_cached_config("sourcesorg/cached-gpt2")
    assert found is not None and json.loads(found.read_text()) == cfg
    assert resolve(Config(model={"name_or_path": "sourcesorg/cached-gpt2"})).source == f"HF cache ({found})"
    for not_a_repo in ("a/b/c", "", "./x", "/abs/path", "~/m"):
        assert _hf_cached_config(not_a_repo) is None
    assert _hf_cached_config("sourcesorg/missing") is None
    assert _hf_cached_config("bad repo id!!") is None  # an invalid id is simply not cached


# ---- calibration: earlier runs' measured peaks --------------------------------------------------------
def _cfg(**changes):
    base = {"model": {"name_or_path": "meta-llama/Llama-3.2-1B"}, "lora": {"enabled": True}}
    for key, value in changes.items():
        section, name = key.split("__")
        base.setdefault(section, {})[name] = value
    return Config(**base)


def test_signature_covers_scratch_fields_only_from_scratch():
    assert memory_signature(_cfg()) == memory_signature(_cfg(model__hidden_size=999))
    assert len(memory_signature(_cfg())) == 16
    scratch = dict(model__from_scratch=True, model__model_type="llama")
    assert memory_signature(_cfg(**scratch)) != memory_signature(_cfg(model__hidden_size=1024, **scratch))
    assert memory_signature(_cfg()) != memory_signature(_cfg(launch__num_machines=2, launch__main_process_ip="h"))
    assert memory_signature(_cfg()) != memory_signature(_cfg(lora__target_modules=["q_proj"]))


def _events(path: Path, events: list) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    lines = [e if isinstance(e, str) else json.dumps(e) for e in events]
    (path / "events.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path / "events.jsonl"


def test_scan_reads_the_last_matching_launch(tmp_path):
    started = {"type": "run_started", "time": 5, "memory_signature": "s"}
    events = _events(tmp_path / "r", [
        {"type": "run_started", "time": 1, "memory_signature": "s"},
        {"type": "log", "gpu_mem_peak_allocated": 1},
        started,  # a resume with the same settings: measurements start again
        "[1, 2]", "{torn", {"type": "log", "loss": 1.0},
        {"type": "log", "gpu_mem_peak_allocated": 7, "gpu_mem_nvml_used": 9},
        {"type": "run_started", "time": 9, "memory_signature": "other"},  # then other settings: stop
        {"type": "log", "gpu_mem_peak_allocated": 100},
    ])
    found, after = _scan(events, "s")
    assert found == (5.0, started)
    assert after == [{"type": "log", "gpu_mem_peak_allocated": 7, "gpu_mem_nvml_used": 9}]
    assert _scan(events, "none") == (None, [])
    assert _scan(tmp_path / "missing.jsonl", "s") == (None, [])


def test_scan_survives_bad_bytes_and_a_run_without_time(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"type": "run_started", "memory_signature": "s", "note": "\xff"}\n'
                     b'{"type": "final", "gpu_mem_peak_reserved": 3}\n')
    found, after = _scan(path, "s")
    assert found is not None and found[0] == 0.0 and after == [{"type": "final", "gpu_mem_peak_reserved": 3}]


def test_last_measured_peak_fields(tmp_path):
    config = _cfg()
    sig = memory_signature(config)
    _events(tmp_path / "old", [{"type": "run_started", "time": 10, "memory_signature": sig,
                                "estimate": {"peak_bytes": 55}},
                               {"type": "log", "gpu_mem_peak_allocated": 1000}])
    _events(tmp_path / "new", [{"type": "run_started", "time": 20, "memory_signature": sig},
                               {"type": "log", "gpu_mem_peak_allocated": 300, "gpu_mem_peak_reserved": "n/a"},
                               {"type": "log", "gpu_mem_peak_allocated": 200, "gpu_mem_peak_reserved": 400}])
    found = last_measured_peak(config, tmp_path)
    assert found == {"run_dir": str(tmp_path / "new"), "time": 20.0, "peak_allocated": 300, "peak_reserved": 400,
                     "nvml_used": None, "estimated_peak": None}
    (tmp_path / "new" / "events.jsonl").unlink()
    old = last_measured_peak(config, tmp_path)
    assert old["run_dir"] == str(tmp_path / "old") and old["estimated_peak"] == 55
    assert old["peak_allocated"] == 1000
    _events(tmp_path / "odd", [{"type": "run_started", "time": 30, "memory_signature": sig, "estimate": [1]}])
    assert last_measured_peak(config, tmp_path)["estimated_peak"] is None
    assert last_measured_peak(config, tmp_path / "events.jsonl") is None  # not a directory


def test_estimate_reports_its_source(tmp_path):
    est = estimate(Config(model={"name_or_path": "gpt2"}))
    assert est.arch_source == "built-in table (gpt2)" and est.architecture.family == "gpt2"
