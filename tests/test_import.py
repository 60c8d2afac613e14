"""Importing Axolotl, LLaMA-Factory, transformers and torchtune configs: mapped or reported, never dropped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runner import presets
from runner.convert import detect_format, import_file, read_source, write_preset
from runner.problems import ConfigError
from tests.conftest import ROOT, python_env

FIXTURES = ROOT / "tests" / "fixtures" / "imports"
ALL = sorted(p.name for p in FIXTURES.iterdir())


def convert(name: str, tmp_path: Path) -> tuple[presets.Loaded, str]:
    out = tmp_path / f"{name}.toml"
    imported = import_file(FIXTURES / name)
    write_preset(imported, FIXTURES / name, out)
    return presets.load(out), out.read_text()


@pytest.mark.parametrize("name", ALL)
def test_every_sample_converts_to_a_valid_preset_that_keeps_unmapped_keys(name: str, tmp_path: Path) -> None:
    imported = import_file(FIXTURES / name)
    loaded, text = convert(name, tmp_path)
    assert loaded.ok, [p.format() for p in loaded.problems]
    source = read_source(FIXTURES / name)
    for item in imported.unmapped:
        assert f"#   {item.key} = " in text, f"{item.key} not kept as a comment"
    # Every top-level source key is either mapped (read) or reported: count what was neither.
    reported = {item.key.split(".")[0].split("[")[0] for item in imported.unmapped}
    assert set(source) - reported, "nothing was mapped"


def test_axolotl_qlora(tmp_path: Path) -> None:
    config = convert("axolotl-qlora.yml", tmp_path)[0].config
    assert config.quantization.load_in_4bit and config.quantization.bnb_4bit_use_double_quant
    assert config.lora.enabled and config.lora.r == 32 and config.lora.target_modules == "all-linear"
    assert (config.data.format, config.data.packing, config.data.max_seq_length) == ("instruction", True, 2048)
    assert config.training.optim == "paged_adamw_8bit" and config.training.learning_rate == 2e-4
    assert config.training.bf16 and config.model.attn_implementation == "flash_attention_2"
    assert config.training.eval_strategy == "steps" and config.training.eval_steps == pytest.approx(1 / 12)  # 4 evals x 3 epochs
    assert config.training.report_to == "wandb"


def test_axolotl_lora_with_dora_and_explicit_targets(tmp_path: Path) -> None:
    config = convert("axolotl-lora.yml", tmp_path)[0].config
    assert config.lora.target_modules == ["q_proj", "v_proj"] and config.lora.use_dora
    assert (config.data.format, config.data.messages_field) == ("chat", "conversations")
    assert config.training.warmup_steps == 0.03 and config.training.fp16 and config.training.seed == 1234


def test_axolotl_full_reports_deepspeed_and_hub(tmp_path: Path) -> None:
    imported = import_file(FIXTURES / "axolotl-full.yml")
    assert {u.key for u in imported.unmapped} == {"deepspeed", "hub_model_id"}
    config = convert("axolotl-full.yml", tmp_path)[0].config
    assert not config.lora.enabled and config.data.format == "text" and config.training.optim == "adamw_torch_fused"


def test_llama_factory_lora_and_qlora(tmp_path: Path) -> None:
    lora = convert("llama-factory-lora.yaml", tmp_path)[0]
    c = lora.config
    assert c.lora.enabled and c.lora.r == 8 and c.lora.target_modules == "all-linear"
    assert c.data.path == "identity" and c.data.eval_split == 0.1 and c.training.warmup_steps == 0.1
    assert c.model.trust_remote_code and any(p.key == "model.trust_remote_code" for p in lora.warnings)
    unmapped = {u.key for u in import_file(FIXTURES / "llama-factory-lora.yaml").unmapped}
    assert {"dataset", "template", "max_samples", "ddp_timeout"} <= unmapped
    q = convert("llama-factory-qlora.yaml", tmp_path)[0].config
    assert q.quantization.load_in_4bit and q.quantization.bnb_4bit_use_double_quant
    assert q.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"] and q.training.optim == "paged_adamw_8bit"
    full = convert("llama-factory-full.yaml", tmp_path)[0].config
    assert not full.lora.enabled and full.data.format == "text" and full.data.packing


def test_training_args_json(tmp_path: Path) -> None:
    loaded, text = convert("training_args.json", tmp_path)
    t = loaded.config.training
    assert (t.learning_rate, t.adam_beta2, t.warmup_steps, t.report_to) == (3e-5, 0.95, 0.05, "tensorboard")
    assert t.load_best_model_at_end and t.gradient_checkpointing and loaded.config.data.eval_split == 0.05
    assert "hf_secretvalue123" not in text and "hub_token" in text  # the key is reported, the secret is not written


def test_trainer_state_json(tmp_path: Path) -> None:
    config = convert("trainer_state.json", tmp_path)[0].config
    assert config.training.per_device_train_batch_size == 4 and config.training.max_steps == 500


def test_torchtune_recipes(tmp_path: Path) -> None:
    lora = convert("torchtune-lora.yaml", tmp_path)[0].config
    assert lora.model.name_or_path == "meta-llama/Llama-3.1-8B" and lora.lora.enabled
    assert lora.lora.target_modules == ["q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert lora.training.optim == "adamw_torch_fused" and lora.training.learning_rate == 3e-4 and lora.training.bf16
    assert lora.training.lr_scheduler_type == "cosine" and lora.training.warmup_steps == 100
    qlora = convert("torchtune-qlora.yaml", tmp_path)[0].config
    assert qlora.quantization.load_in_4bit and qlora.model.name_or_path == "meta-llama/Llama-3.2-3B"
    full = convert("torchtune-full.yaml", tmp_path)[0].config
    assert not full.lora.enabled and full.data.packing and (full.training.adam_beta1, full.training.adam_beta2) == (0.9, 0.95)


def test_detection_and_bad_files(tmp_path: Path) -> None:
    assert detect_format({"base_model": "x"}) == "axolotl"
    assert detect_format({"finetuning_type": "lora"}) == "llama-factory"
    assert detect_format({"model": {"_component_": "x"}}) == "torchtune"
    assert detect_format({"nothing": 1}) is None
    bad = tmp_path / "bad.yaml"
    bad.write_text("base_model: x\nlora_r: [1,\n")
    with pytest.raises(ConfigError) as info:
        import_file(bad)
    assert info.value.problems[0].line is not None and "malformed YAML" in info.value.problems[0].message
    unknown = tmp_path / "what.yaml"
    unknown.write_text("hello: 1\n")
    with pytest.raises(ConfigError, match="cannot tell which tool"):
        import_file(unknown)


def test_cli_import_reports_and_exits_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "p.toml"
    run = subprocess.run([sys.executable, "-m", "runner.cli", "import", str(FIXTURES / "axolotl-qlora.yml"), "-o", str(out)],
                         capture_output=True, text=True, env=python_env(), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "not imported: special_tokens -- no tunedeck equivalent" in run.stdout
    bad = tmp_path / "x.yaml"
    bad.write_text("hello: 1\n")
    run = subprocess.run([sys.executable, "-m", "runner.cli", "import", str(bad), "-o", str(out)],
                         capture_output=True, text=True, env=python_env(), cwd=tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr and "--format" in run.stderr
