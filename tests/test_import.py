"""`tunedeck import`: other tools' configs become presets that train as the original would.

Fixtures (tests/fixtures/imports) are written for these tests; they mirror real Axolotl, LLaMA-Factory
and torchtune configs, including the keys they leave out, so the source tool's defaults are tested too.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import tomlkit

from runner import presets
from runner.convert import detect_format, import_file, read_source, redact, write_preset
from runner.problems import ConfigError
from tests.conftest import ROOT, python_env

FIXTURES = ROOT / "tests" / "fixtures" / "imports"
ALL = sorted(p.name for p in FIXTURES.iterdir() if p.is_file())
REFUSED = sorted(p.name for p in (FIXTURES / "refused").iterdir())


def convert(name: str, tmp_path: Path, *, lenient: bool = False) -> tuple[presets.Loaded, str]:
    source = FIXTURES / name
    out = tmp_path / f"{Path(name).name}.toml"
    write_preset(import_file(source, lenient=lenient), source, out)
    return presets.load(out), out.read_text()


def why(text: str, target: str) -> str:
    """The note written beside `section.key` in a preset ('' when there is none)."""
    section, key = target.split(".", 1)
    return tomlkit.parse(text)[section].item(key).trivia.comment.lstrip("# ")


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], capture_output=True, text=True,
                          env=python_env(), cwd=cwd)


@pytest.mark.parametrize("name", ALL)
def test_every_sample_converts_to_a_valid_preset_that_keeps_unmapped_keys(name: str, tmp_path: Path) -> None:
    imported = import_file(FIXTURES / name)
    loaded, text = convert(name, tmp_path)
    assert loaded.ok, [p.format() for p in loaded.problems]
    assert not imported.unsupported
    for item in imported.unmapped:
        assert f"#   {item.key} = " in text, f"{item.key} not kept as a comment"
    reported = {item.key.split(".")[0].split("[")[0] for item in imported.unmapped}
    assert set(read_source(FIXTURES / name)) - reported, "nothing was mapped"
    for target, note in imported.why.items():  # every derived or defaulted value says why, beside it
        assert why(text, target) == " ".join(note.split())


# --- Axolotl --------------------------------------------------------------------------------------
def test_axolotl_saves_per_epoch_one_means_once_per_epoch_not_every_step(tmp_path: Path) -> None:
    loaded, text = convert("axolotl-once-per-epoch.yml", tmp_path)
    t = loaded.config.training
    assert (t.save_strategy, t.num_train_epochs) == ("epoch", 1.0)
    assert "saves_per_epoch: 1" in why(text, "training.save_strategy")
    assert (t.eval_strategy, t.eval_steps) == ("steps", 0.25)  # evals_per_epoch: 4 over one epoch


def test_axolotl_saves_per_epoch_over_several_epochs_is_a_ratio_transformers_reads_as_such(tmp_path: Path) -> None:
    from transformers.trainer_callback import TrainerState  # the real rule: below 1 is a fraction of all steps

    t = convert("axolotl-qlora.yml", tmp_path)[0].config.training  # saves_per_epoch 1, evals_per_epoch 4, 3 epochs
    assert (t.save_strategy, t.save_steps) == ("steps", pytest.approx(1 / 3))
    assert (t.eval_strategy, t.eval_steps) == ("steps", pytest.approx(1 / 12))
    state = TrainerState()
    state.compute_steps(SimpleNamespace(logging_steps=t.logging_steps, eval_steps=t.eval_steps, save_steps=t.save_steps),
                        300)
    assert (state.save_steps, state.eval_steps) == (100, 25)  # once per 100-step epoch, four evals per epoch


def test_axolotl_keys_with_a_tunedeck_field_are_mapped_and_absent_keys_take_axolotl_defaults(tmp_path: Path) -> None:
    loaded, text = convert("axolotl-once-per-epoch.yml", tmp_path)
    c = loaded.config
    assert c.model.attn_implementation == "flash_attention_2"  # attn_implementation, not "no equivalent"
    assert c.training.gradient_checkpointing and "offload" in why(text, "training.gradient_checkpointing")
    expected = {  # key: (value, a word of the note that cites where the default comes from)
        "lora.lora_dropout": (0.0, "schemas/peft.py"), "lora.target_modules": (["q_proj", "v_proj"], "peft"),
        "data.max_seq_length": (512, "schemas/config.py"), "data.completion_only_loss": (True, "train_on_inputs"),
        "training.lr_scheduler_type": ("cosine", "core/builders/base.py"),
        "training.warmup_steps": (0.03, "core/builders/base.py"), "training.optim": ("adamw_torch_fused", "schemas"),
        "training.save_total_limit": (4, "core/builders/base.py"), "training.gradient_accumulation_steps": (1, "schemas"),
        "training.max_grad_norm": (1.0, "transformers"),
    }
    for target, (value, cited) in expected.items():
        section, key = target.split(".")
        assert getattr(getattr(c, section), key) == value, target
        assert "absent" in why(text, target) and cited in why(text, target), target


def test_axolotl_attention_flags_and_flash_attention(tmp_path: Path) -> None:
    assert convert("axolotl-qlora.yml", tmp_path)[0].config.model.attn_implementation == "flash_attention_2"
    assert convert("axolotl-early-stop.yml", tmp_path)[0].config.model.attn_implementation == "sdpa"


def test_axolotl_early_stopping_turns_on_load_best_model_at_end(tmp_path: Path) -> None:
    loaded, text = convert("axolotl-early-stop.yml", tmp_path)
    t = loaded.config.training
    assert loaded.ok, [p.format() for p in loaded.problems]
    assert t.early_stopping_patience == 3 and t.load_best_model_at_end
    assert "early_stopping_patience" in why(text, "training.load_best_model_at_end")
    assert (t.save_steps, t.eval_steps) == (0.5, 0.25)  # saves a multiple of evals, as load-best needs


def test_axolotl_qlora(tmp_path: Path) -> None:
    loaded, text = convert("axolotl-qlora.yml", tmp_path)
    config = loaded.config
    assert config.quantization.load_in_4bit and config.quantization.bnb_4bit_use_double_quant
    assert config.lora.enabled and config.lora.r == 32 and config.lora.target_modules == "all-linear"
    assert (config.data.format, config.data.packing, config.data.max_seq_length) == ("instruction", True, 2048)
    assert config.training.optim == "paged_adamw_8bit" and config.training.learning_rate == 2e-4
    assert config.training.bf16 and "auto" in why(text, "training.bf16")
    assert config.training.report_to == "wandb" and config.training.warmup_steps == 10


def test_axolotl_lora_with_dora_and_explicit_targets(tmp_path: Path) -> None:
    config = convert("axolotl-lora.yml", tmp_path)[0].config
    assert config.lora.target_modules == ["q_proj", "v_proj"] and config.lora.use_dora
    assert (config.data.format, config.data.messages_field) == ("chat", "conversations")
    assert config.training.warmup_steps == 0.03 and config.training.fp16 and config.training.seed == 1234


def test_axolotl_deepspeed_path_becomes_the_launch_config(tmp_path: Path) -> None:
    imported = import_file(FIXTURES / "axolotl-full.yml")
    assert {u.key for u in imported.unmapped} == {"hub_model_id"}
    loaded, text = convert("axolotl-full.yml", tmp_path)
    la = loaded.config.launch
    assert (la.strategy, la.deepspeed_config, la.zero_stage) == ("deepspeed", "deepspeed_configs/zero2.json", 2)
    assert "zero2.json" in why(text, "launch.zero_stage")  # the file is not here: the stage comes from its name
    assert not loaded.config.lora.enabled and loaded.config.data.format == "text"


# --- LLaMA-Factory --------------------------------------------------------------------------------
def test_llama_factory_absent_keys_take_llama_factory_defaults(tmp_path: Path) -> None:
    loaded, text = convert("llama-factory-qlora.yaml", tmp_path)
    c = loaded.config
    assert c.lora.enabled and c.lora.r == 16
    assert c.lora.lora_alpha == 32 and "2 x lora_rank" in why(text, "lora.lora_alpha")
    assert c.lora.lora_dropout == 0.0 and "finetuning_args.py" in why(text, "lora.lora_dropout")
    assert c.quantization.load_in_4bit and c.quantization.bnb_4bit_use_double_quant
    assert "double_quantization" in why(text, "quantization.bnb_4bit_use_double_quant")
    assert c.training.gradient_checkpointing and "disable_gradient_checkpointing" in why(text, "training.gradient_checkpointing")
    assert c.data.max_seq_length == 2048 and "cutoff_len" in why(text, "data.max_seq_length")
    assert c.data.completion_only_loss and "train_on_prompt" in why(text, "data.completion_only_loss")
    # training keys left out are transformers' defaults, as LLaMA-Factory runs them
    assert (c.training.learning_rate, c.training.num_train_epochs, c.training.per_device_train_batch_size) == (5e-5, 3.0, 8)
    assert "transformers" in why(text, "training.learning_rate")
    assert c.launch.strategy == "fsdp" and c.model.attn_implementation == "sdpa"
    assert c.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"] and c.training.optim == "paged_adamw_8bit"
    # the dataset name resolves through dataset_info.json, with its renamed columns
    assert (c.data.format, c.data.instruction_field, c.data.output_field) == ("instruction", "question", "answer")


def test_llama_factory_lora_dataset_from_dataset_info(tmp_path: Path) -> None:
    loaded, text = convert("llama-factory-lora.yaml", tmp_path)
    c = loaded.config
    assert c.lora.r == 8 and c.lora.lora_alpha == 16 and c.lora.target_modules == "all-linear"
    assert Path(c.data.path) == FIXTURES / "data" / "support_faq.json" and c.data.format == "instruction"
    assert c.data.eval_split == 0.1 and c.training.warmup_steps == 0.1 and c.training.eval_steps == 500
    assert c.model.trust_remote_code and any(p.key == "model.trust_remote_code" for p in loaded.warnings)


def test_llama_factory_pretraining_with_deepspeed_file(tmp_path: Path) -> None:
    loaded, text = convert("llama-factory-full.yaml", tmp_path)
    c = loaded.config
    assert not c.lora.enabled and c.data.format == "text" and c.data.path == "someorg/web-corpus-small"
    assert c.data.packing and "stage pt" in why(text, "data.packing")
    assert c.launch.strategy == "deepspeed" and Path(c.launch.deepspeed_config) == FIXTURES / "data" / "ds_z3_offload.json"
    assert c.launch.zero_stage == 3 and "ds_z3_offload.json" in why(text, "launch.zero_stage")


def test_llama_factory_newer_layout_is_detected_and_imported(tmp_path: Path) -> None:
    data = read_source(FIXTURES / "llama-factory-v1.yaml")
    assert detect_format(data) == "llama-factory-v1"  # not Axolotl, despite micro_batch_size
    c = convert("llama-factory-v1.yaml", tmp_path)[0].config
    assert c.model.name_or_path == "Qwen/Qwen3-4B"
    assert (c.lora.enabled, c.lora.r, c.lora.lora_alpha, c.lora.lora_dropout, c.lora.target_modules) == (
        True, 16, 32, 0.05, "all-linear")
    assert c.launch.strategy == "fsdp"
    assert Path(c.data.path) == FIXTURES / "data" / "support_faq.json" and c.data.format == "instruction"
    assert (c.training.per_device_train_batch_size, c.training.gradient_accumulation_steps) == (2, 8)
    assert (c.data.max_seq_length, c.training.learning_rate, c.training.max_steps) == (4096, 2e-4, 10)


# --- torchtune ------------------------------------------------------------------------------------
def test_torchtune_instruct_download_nulls_and_builders(tmp_path: Path) -> None:
    loaded, text = convert("torchtune-lora.yaml", tmp_path)
    c = loaded.config
    assert c.model.name_or_path == "meta-llama/Llama-3.1-8B-Instruct"  # the checkpoint dir is an Instruct download
    assert c.data.max_seq_length == 131072 and "no truncation" in why(text, "data.max_seq_length")
    assert c.training.max_grad_norm == 0.0 and "does not clip" in why(text, "training.max_grad_norm")
    assert (c.data.path, c.data.format) == ("yahma/alpaca-cleaned", "instruction")
    assert not c.data.completion_only_loss and "trains on the prompt" in why(text, "data.completion_only_loss")
    assert c.data.eval_split == 0.05 and c.data.split == "train"
    assert c.training.eval_strategy == "no" and "never validate" in why(text, "training.eval_strategy")
    assert c.lora.target_modules == ["q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert c.training.optim == "adamw_torch_fused" and c.training.bf16 and c.model.dtype == "bfloat16"
    assert c.training.lr_scheduler_type == "cosine" and c.training.warmup_steps == 100


def test_torchtune_absent_keys_take_torchtune_and_torch_defaults(tmp_path: Path) -> None:
    loaded, text = convert("torchtune-qlora.yaml", tmp_path)
    c = loaded.config
    assert c.model.name_or_path == "meta-llama/Llama-3.2-3B" and c.quantization.load_in_4bit
    assert c.training.weight_decay == 0.01 and "adamw.py" in why(text, "training.weight_decay")
    assert c.training.lr_scheduler_type == "constant" and "constant" in why(text, "training.lr_scheduler_type")
    assert c.training.max_grad_norm == 0.0 and "absent" in why(text, "training.max_grad_norm")
    assert (c.data.path, c.data.format, c.data.completion_only_loss) == ("tatsu-lab/alpaca", "instruction", False)
    assert c.lora.lora_alpha == 16 and "_model_builders.py" in why(text, "lora.lora_alpha")
    assert c.lora.lora_dropout == 0.0 and c.training.max_steps == 500  # 250 steps per epoch x 2 epochs
    assert c.data.max_seq_length == 131072


def test_torchtune_full_with_separate_validation_set(tmp_path: Path) -> None:
    c = convert("torchtune-full.yaml", tmp_path)[0].config
    assert not c.lora.enabled and c.data.packing and (c.training.adam_beta1, c.training.adam_beta2) == (0.9, 0.95)
    assert (c.data.path, c.data.eval_path) == ("data/corpus.json", "data/held_out.json")
    assert (c.training.eval_strategy, c.training.eval_steps) == ("steps", 200)
    assert c.model.name_or_path == "Qwen/Qwen2.5-0.5B" and c.data.max_seq_length == 1024


# --- what tunedeck cannot train as meant ----------------------------------------------------------
REFUSAL_WORDS = {
    "axolotl-dpo.yml": ("rl", "dpo"), "axolotl-reward.yml": ("reward_model", "reward modelling"),
    "llama-factory-orpo.yaml": ("stage", "ORPO"), "llama-factory-kto.yaml": ("stage", "KTO"),
    "torchtune-dpo.yaml": ("stack_exchange_paired_dataset", "preference"),
    "torchtune-unknown-builder.yaml": ("cooking_recipes_dataset", "unknown dataset builder"),
    "torchtune-unknown-model.yaml": ("model._component_", "cannot name the model"),
}


@pytest.mark.parametrize("name", REFUSED)
def test_unsupported_configs_exit_1_naming_what_and_why(name: str, tmp_path: Path) -> None:
    out = tmp_path / "p.toml"
    run = cli("import", str(FIXTURES / "refused" / name), "-o", str(out), cwd=tmp_path)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    key, reason = REFUSAL_WORDS[name]
    assert key in run.stderr and reason in run.stderr and "--lenient" in run.stderr
    assert not out.exists()


@pytest.mark.parametrize("name", REFUSED)
def test_lenient_imports_and_says_at_the_top_what_was_changed(name: str, tmp_path: Path) -> None:
    out = tmp_path / "p.toml"
    run = cli("import", str(FIXTURES / "refused" / name), "-o", str(out), "--lenient", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    head = out.read_text().split("description =")[0]
    key, reason = REFUSAL_WORDS[name]
    assert "CHANGED ON IMPORT (--lenient)" in head and key in head and reason in head
    assert "CHANGED (--lenient)" in run.stdout


# --- secrets --------------------------------------------------------------------------------------
def test_secrets_are_redacted_at_any_depth(tmp_path: Path) -> None:
    loaded, text = convert("axolotl-once-per-epoch.yml", tmp_path)
    for secret in ("hf_abcdefghijklmnopqrstuvwxyz0123", "0123456789abcdef0123456789abcdef", "hunter2-but-longer",
                   "tok-secret-value-42"):
        assert secret not in text
    assert '"project": "support-bot"' in text and "datasets[0].token" in text  # the rest stays, keys are named
    nested = {"wandb": {"api_key": "k1", "project": "p"}, "datasets": [{"path": "a", "token": "t1"},
              {"path": "b", "auth": {"password": "pw", "user": "me"}}], "HF_TOKEN": "t2", "apiKey": "k2",
              "aws_secret_access_key": "k3", "special_tokens": {"pad_token": "<pad>"}, "tokenizer": "x",
              "note": "hf_ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
    clean = redact(nested)
    assert clean["wandb"] == {"api_key": "<redacted>", "project": "p"}
    assert clean["datasets"][0] == {"path": "a", "token": "<redacted>"} and clean["datasets"][1]["auth"] == "<redacted>"
    assert clean["HF_TOKEN"] == clean["apiKey"] == clean["aws_secret_access_key"] == clean["note"] == "<redacted>"
    assert clean["special_tokens"] == {"pad_token": "<redacted>"} and clean["tokenizer"] == "x"


def test_training_args_json(tmp_path: Path) -> None:
    loaded, text = convert("training_args.json", tmp_path)
    t = loaded.config.training
    assert (t.learning_rate, t.adam_beta2, t.warmup_steps, t.report_to) == (3e-5, 0.95, 0.05, "tensorboard")
    assert t.load_best_model_at_end and t.gradient_checkpointing and loaded.config.data.eval_split == 0.05
    assert "hf_secretvalue123" not in text and "hub_token" in text  # the key is reported, the secret is not written


def test_trainer_state_json(tmp_path: Path) -> None:
    config = convert("trainer_state.json", tmp_path)[0].config
    assert config.training.per_device_train_batch_size == 4 and config.training.max_steps == 500


def test_transformers_defaults_table_matches_the_installed_transformers() -> None:
    import dataclasses

    from transformers import TrainingArguments

    from runner.convert._common import TRANSFORMERS_DEFAULTS

    actual = {f.name: f.default for f in dataclasses.fields(TrainingArguments)}
    assert {k: actual[k] for k in TRANSFORMERS_DEFAULTS} == TRANSFORMERS_DEFAULTS


# --- round trip: what tunedeck exports comes back as the same config --------------------------------
def _round_trip_config():
    from runner.schema import Config

    return Config.model_validate({
        "description": "round trip", "model": {"name_or_path": "Qwen/Qwen2.5-0.5B", "attn_implementation": "eager"},
        "lora": {"enabled": True, "r": 24, "lora_alpha": 48, "target_modules": ["q_proj", "v_proj"]},
        "data": {"path": "data/train.jsonl", "format": "chat", "max_seq_length": 1536, "eval_split": 0.02},
        "training": {"learning_rate": 1.5e-4, "num_train_epochs": 2.0, "per_device_train_batch_size": 3,
                     "gradient_accumulation_steps": 5, "lr_scheduler_type": "cosine", "warmup_steps": 0.07,
                     "weight_decay": 0.03, "max_grad_norm": 0.4, "bf16": True, "gradient_checkpointing": True,
                     "eval_strategy": "steps", "eval_steps": 40, "save_steps": 80, "save_total_limit": 3,
                     "seed": 7, "logging_steps": 5},
        "launch": {"num_processes": 4, "strategy": "ddp", "main_process_port": 29611},
    })


@pytest.mark.parametrize("fmt", ["sbatch", "accelerate-yaml", "accelerate-cmd"])
def test_exported_files_reimport_to_the_same_config(fmt: str, tmp_path: Path) -> None:
    from runner.export import SUFFIXES, export_text

    config = _round_trip_config()
    exported = tmp_path / f"job{SUFFIXES[fmt]}"
    exported.write_text(export_text(config, fmt, name="job", cuda=True))
    back = tmp_path / "back.toml"
    write_preset(import_file(exported), exported, back)
    loaded = presets.load(back)
    assert loaded.ok, [p.format() for p in loaded.problems]
    from runner.target import target_cuda

    # An export names the hardware it targets, so 'auto' may come back as what it resolved to here.
    assert target_cuda(loaded.config) == target_cuda(config)
    mine, theirs = config.model_dump(exclude={"description"}), loaded.config.model_dump(exclude={"description"})
    mine["launch"].pop("device"), theirs["launch"].pop("device")
    for section in mine:
        assert theirs[section] == mine[section], section


def test_exported_training_args_json_reimports_to_the_same_training_section(tmp_path: Path) -> None:
    from runner.export import export_text

    config = _round_trip_config()
    exported = tmp_path / "training_args.json"
    exported.write_text(export_text(config, "training-args", name="job", cuda=True))
    assert detect_format(json.loads(exported.read_text())) == "hf-args"
    back = tmp_path / "back.toml"
    write_preset(import_file(exported), exported, back)
    loaded = presets.load(back)
    assert loaded.ok, [p.format() for p in loaded.problems]
    assert loaded.config.training.model_dump() == config.training.model_dump()
    assert math.isclose(loaded.config.training.warmup_steps, 0.07)


# --- detection and bad files ----------------------------------------------------------------------
def test_detection_and_bad_files(tmp_path: Path) -> None:
    assert detect_format({"base_model": "x"}) == "axolotl"
    assert detect_format({"finetuning_type": "lora"}) == "llama-factory"
    assert detect_format({"model": "Qwen/Qwen3-4B", "peft_config": {"name": "lora"}}) == "llama-factory-v1"
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
    run = cli("import", str(FIXTURES / "axolotl-qlora.yml"), "-o", str(out), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "not imported: special_tokens -- no tunedeck equivalent" in run.stdout
    bad = tmp_path / "x.yaml"
    bad.write_text("hello: 1\n")
    run = cli("import", str(bad), "-o", str(out), cwd=tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr and "--format" in run.stderr  # input refused


def test_a_deepspeed_config_file_is_what_accelerate_launches_with(tmp_path: Path) -> None:
    from runner.launch import accelerate_config

    imported = import_file(FIXTURES / "llama-factory-full.yaml")
    config = presets.loads(tomlkit.dumps(imported.raw))
    section = accelerate_config(config, cuda=True)["deepspeed_config"]
    # accelerate refuses zero_stage, clipping, offload and precision keys beside a deepspeed_config_file
    assert section == {"deepspeed_config_file": str(FIXTURES / "data" / "ds_z3_offload.json"), "zero3_init_flag": True}
    from accelerate.commands.config.config_args import load_config_from_file

    written = tmp_path / "accelerate.json"
    written.write_text(json.dumps(accelerate_config(config, cuda=True)))
    assert load_config_from_file(str(written)).deepspeed_config == section  # accelerate reads it as written
    plain = config.model_copy(update={"launch": config.launch.model_copy(update={"deepspeed_config": ""})})
    assert accelerate_config(plain, cuda=True)["deepspeed_config"]["zero_stage"] == 3  # generated settings otherwise


# --- the data settings: chat templates, mixtures, row caps, role mapping, trained roles ------------
def test_axolotl_mixture_roles_and_chat_template(tmp_path: Path) -> None:
    loaded, text = convert("axolotl-mixture.yml", tmp_path)
    d = loaded.config.data
    assert d.chat_template == "chatml" and d.format == "chat"
    first, second = d.datasets
    assert (first.path, first.messages_field, first.role_field, first.content_field) == (
        "data/helpdesk.jsonl", "dialogue", "speaker", "text")
    assert (second.path, second.messages_field, second.role_field, second.content_field) == (
        "data/old_threads.jsonl", "conversations", "from", "value")
    assert d.role_map == ["customer=user", "agent=assistant"] and d.roles_to_train == ["assistant"]
    assert "[[data.datasets]]" in text and "mixture" in text


def test_llama_factory_mixture_max_samples_template_and_sharegpt_tags(tmp_path: Path) -> None:
    loaded, text = convert("llama-factory-mixture.yaml", tmp_path)
    d = loaded.config.data
    assert d.chat_template == "qwen" and d.max_samples == 500
    faq, chats = d.datasets
    assert Path(faq.path) == FIXTURES / "data" / "support_faq.json" and faq.format == "instruction"
    assert (chats.format, chats.messages_field, chats.role_field, chats.content_field) == ("chat", "turns", "role", "content")
    assert d.role_map == ["observation=tool"]  # user/assistant/system tags already name the template's roles


def test_torchtune_slimorca_maps_sharegpt_turns(tmp_path: Path) -> None:
    loaded, text = convert("torchtune-slimorca.yaml", tmp_path)
    d = loaded.config.data
    assert (d.path, d.format, d.messages_field, d.role_field, d.content_field) == (
        "Open-Orca/SlimOrca-Dedup", "chat", "conversations", "from", "value")
    assert d.role_map == ["human=user", "gpt=assistant"] and d.completion_only_loss
    assert "masks the prompt" in why(text, "data.completion_only_loss")


def test_a_partial_training_args_file_takes_transformers_defaults(tmp_path: Path) -> None:
    source = tmp_path / "training_args.json"
    source.write_text(json.dumps({"learning_rate": 1e-4, "per_device_train_batch_size": 2, "output_dir": "out"}))
    out = tmp_path / "p.toml"
    write_preset(import_file(source), source, out)
    text = out.read_text()
    t = presets.load(out).config.training
    assert (t.learning_rate, t.per_device_train_batch_size) == (1e-4, 2)
    assert (t.num_train_epochs, t.logging_steps, t.save_steps, t.lr_scheduler_type) == (3.0, 500, 500, "linear")
    assert "transformers default" in why(text, "training.logging_steps") and why(text, "training.learning_rate") == ""


def test_llama_factory_newer_layout_dataset_list_becomes_a_mixture(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.json").write_text('[{"instruction": "x", "input": "", "output": "y"}]')
    (tmp_path / "data" / "mix.yaml").write_text(
        "first:\n  file_name: a.json\n  dataset_dir: data\n  converter: alpaca\n  num_samples: 300\n"
        "second:\n  hf_hub_url: someorg/chats\n  converter: sharegpt\n")
    source = tmp_path / "train.yaml"
    source.write_text("model: Qwen/Qwen3-0.6B\ntrain_dataset: data/mix.yaml\nmicro_batch_size: 1\n")
    out = tmp_path / "p.toml"
    write_preset(import_file(source), source, out)
    d = presets.load(out).config.data
    first, second = d.datasets
    assert (Path(first.path), first.format, first.max_samples) == (tmp_path / "data" / "a.json", "instruction", 300)
    assert (second.path, second.format) == ("someorg/chats", "chat")


@pytest.mark.parametrize("text", [
    "base_model: x\ndatasets: [{path: a, type: alpaca}]\nsaves_per_epoch: often\n",
    "base_model: x\ndatasets: [{path: a, type: alpaca}]\nbatch_size: lots\n",
    "model: {_component_: torchtune.models.llama3_1.lora_llama3_1_8b}\ndataset: {_component_: torchtune.datasets.alpaca_dataset}\n"
    "optimizer: {_component_: torch.optim.AdamW, betas: 0.9}\n",
    "model: Qwen/Qwen3-0.6B\npeft_config: {name: lora}\nglobal_batch_size: [1, 2]\ntrain_dataset: nowhere.yaml\n",
])
def test_odd_values_give_a_clear_error_not_a_traceback(text: str, tmp_path: Path) -> None:
    source = tmp_path / "odd.yaml"
    source.write_text(text)
    run = cli("import", str(source), "-o", str(tmp_path / "p.toml"), "--lenient", cwd=tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr and "internal error" not in run.stderr  # input refused
    assert "odd.yaml" in run.stderr


@pytest.mark.parametrize(("builder", "checkpoint_dir", "expected"), [
    ("lora_llama3_2_1b", "/tmp/Llama-3.2-1B-Instruct/", "meta-llama/Llama-3.2-1B-Instruct"),
    ("lora_llama3_2_1b", "/tmp/Llama-3.2-1B/", "meta-llama/Llama-3.2-1B"),
    ("lora_qwen2_5_1_5b_instruct", "/tmp/whatever/", "Qwen/Qwen2.5-1.5B-Instruct"),
    ("gemma2_2b", "/tmp/gemma-2-2b-it/", "google/gemma-2-2b-it"),
    ("qwen3_0_6b_base", "/tmp/Qwen3-0.6B-Base/", "Qwen/Qwen3-0.6B-Base"),
])
def test_torchtune_builder_and_checkpoint_dir_name_the_model(builder: str, checkpoint_dir: str, expected: str) -> None:
    from runner.convert import torchtune

    imported = torchtune.convert({"model": {"_component_": f"torchtune.models.x.{builder}"},
                                  "checkpointer": {"checkpoint_dir": checkpoint_dir},
                                  "dataset": {"_component_": "torchtune.datasets.alpaca_dataset"}})
    assert imported.value("model.name_or_path") == expected and not imported.unsupported


def test_torchtune_local_hf_checkpoint_dir_is_used_as_is(tmp_path: Path) -> None:
    from runner.convert import torchtune

    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 4096}))
    imported = torchtune.convert({"model": {"_component_": "my.models.custom_lm"},
                                  "checkpointer": {"checkpoint_dir": str(tmp_path)},
                                  "tokenizer": {"max_seq_len": None},
                                  "dataset": {"_component_": "torchtune.datasets.alpaca_dataset"}})
    assert imported.value("model.name_or_path") == str(tmp_path.resolve()) and not imported.unsupported
    assert imported.value("data.max_seq_length") == 4096  # the model's own window: null cuts nothing


def test_numbers_yaml_reads_as_strings_become_numbers(tmp_path: Path) -> None:
    source = tmp_path / "lf.yaml"  # PyYAML reads 5e-5 (no dot) as a string; LLaMA-Factory parses it as a number
    source.write_text("model_name_or_path: Qwen/Qwen2.5-0.5B\nfinetuning_type: full\ndataset: web_corpus\n"
                      f"dataset_dir: {FIXTURES / 'data'}\nlearning_rate: 5e-5\nwarmup_steps: '20'\n")
    out = tmp_path / "p.toml"
    write_preset(import_file(source), source, out)
    t = presets.load(out).config.training
    assert (t.learning_rate, t.warmup_steps) == (5e-5, 20)


def test_an_exported_accelerate_config_with_a_deepspeed_file_reimports_to_the_same_launch(tmp_path: Path) -> None:
    from runner.export import export_text

    base = _round_trip_config()
    config = base.model_copy(update={"launch": base.launch.model_copy(update={
        "strategy": "deepspeed", "zero_stage": 3, "deepspeed_config": "configs/ds_z3.json"})})
    exported = tmp_path / "accelerate.yaml"
    exported.write_text(export_text(config, "accelerate-yaml", name="job", cuda=True))
    assert "deepspeed_config_file" in exported.read_text()
    launch, expected = dict(import_file(exported).raw["launch"]), config.launch.model_dump()
    # DeepSpeed means CUDA: the export names that target, so 'auto' comes back as 'cuda'.
    assert launch.pop("device", "auto") in ("auto", "cuda") and expected.pop("device") == "auto"
    assert launch == expected


def test_a_deepspeed_file_without_the_deepspeed_strategy_is_flagged() -> None:
    from runner import validate
    from runner.schema import Config

    config = Config.model_validate({"launch": {"deepspeed_config": "ds.json", "strategy": "ddp", "num_processes": 2}})
    assert any(p.key == "launch.deepspeed_config" and not p.is_error for p in validate.check(config))


def test_a_real_training_arguments_dump_imports_its_values(tmp_path: Path) -> None:
    import warnings

    from transformers import TrainingArguments

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        args = TrainingArguments(output_dir=str(tmp_path / "out"), learning_rate=2e-4, num_train_epochs=2,
                                 per_device_train_batch_size=4, gradient_accumulation_steps=4, lr_scheduler_type="cosine",
                                 warmup_steps=0.05, eval_strategy="steps", eval_steps=50, save_steps=100, logging_steps=5,
                                 gradient_checkpointing=True, weight_decay=0.1, report_to="none", use_cpu=True)
    source = tmp_path / "training_args.json"
    source.write_text(args.to_json_string())
    imported = import_file(source)
    assert not {"activation_checkpointing", "gradient_checkpointing"} & {u.key for u in imported.unmapped}
    out = tmp_path / "p.toml"
    write_preset(imported, source, out)
    t = presets.load(out).config.training
    assert (t.learning_rate, t.num_train_epochs, t.per_device_train_batch_size, t.gradient_accumulation_steps) == (
        2e-4, 2.0, 4, 4)
    assert (t.lr_scheduler_type, t.warmup_steps, t.eval_strategy, t.eval_steps, t.save_steps) == (
        "cosine", 0.05, "steps", 50, 100)
    assert t.gradient_checkpointing and t.weight_decay == 0.1 and t.logging_steps == 5


def test_llama_factory_early_stopping_steps_is_the_patience() -> None:
    from runner.convert import llama_factory

    imported = llama_factory.convert({"model_name_or_path": "x", "early_stopping_steps": 3, "metric_for_best_model":
                                      "eval_loss", "load_best_model_at_end": True})
    assert imported.value("training.early_stopping_patience") == 3
    assert "EarlyStoppingCallback" in imported.why["training.early_stopping_patience"]
