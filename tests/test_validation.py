"""Bad input is normal input: every rule fires on a real file and says where and why."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runner import presets
from runner.problems import ConfigError
from runner.validate import Context
from tests.conftest import ROOT, python_env


def write(tmp_path: Path, text: str, name: str = "bad.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def only(loaded: presets.Loaded, key: str, severity: str = "error") -> presets.Problem:
    found = [p for p in loaded.problems if p.key == key and p.severity == severity]
    assert found, f"no {severity} for {key}; got {[p.format() for p in loaded.problems]}"
    return found[0]


def toml(**sections) -> str:
    """A preset body from {section: {key: value}}."""
    import tomlkit

    return tomlkit.dumps(sections)


BY_STEPS = {"eval_strategy": "steps", "load_best_model_at_end": True}  # with data.eval_split: best model by steps
# (file body, key of the expected problem, severity, words the message or hint must contain)
RULES = [
    (toml(training={"bf16": True, "fp16": True}), "training.fp16", "error", "both"),
    (toml(quantization={"load_in_4bit": True, "load_in_8bit": True}, lora={"enabled": True}),
     "quantization.load_in_8bit", "error", "both"),
    (toml(quantization={"load_in_4bit": True}), "lora.enabled", "error", "LoRA"),
    (toml(training={"load_best_model_at_end": True}), "training.load_best_model_at_end", "error", "evaluation"),
    (toml(data={"eval_split": 0.1}, training={**BY_STEPS, "save_strategy": "epoch"}), "training.save_strategy", "error",
     "schedule"),
    (toml(data={"eval_split": 0.1}, training={**BY_STEPS, "eval_steps": 30, "save_steps": 50}), "training.save_steps",
     "error", "multiple"),
    (toml(training={"early_stopping_patience": 3}), "training.early_stopping_patience", "error", "evaluation"),
    (toml(training={"eval_strategy": "steps"}), "training.eval_strategy", "error", "eval data"),
    (toml(training={"warmup_steps": 1.5}), "training.warmup_steps", "error", "below 1"),
    (toml(training={"max_steps": -1, "num_train_epochs": 0}), "training.max_steps", "error", "nothing"),
    (toml(training={"learning_rate": 1e-2}), "training.learning_rate", "warning", "high"),
    (toml(training={"learning_rate": 3e-3}), "training.learning_rate", "warning", "full fine-tuning"),
    (toml(data={"eval_path": "e.jsonl", "eval_split": 0.1}), "data.eval_split", "error", "both"),
    (toml(model={"from_scratch": True, "hidden_size": 100, "num_attention_heads": 12}), "model.num_attention_heads",
     "error", "divisible"),
    (toml(model={"from_scratch": True, "num_attention_heads": 12, "num_key_value_heads": 5}),
     "model.num_key_value_heads", "error", "divide"),
    (toml(launch={"mixed_precision": "fp16"}, training={"bf16": True}), "launch.mixed_precision", "error", "contradicts"),
    (toml(launch={"gpu_ids": "0", "num_processes": 2}), "launch.num_processes", "error", "GPU id"),
    (toml(model={"trust_remote_code": True}), "model.trust_remote_code", "warning", "code"),
]


@pytest.mark.parametrize("body,key,severity,words", RULES, ids=[r[1] + "-" + r[2] for r in RULES])
def test_each_rule_reports_its_key_line_and_reason(tmp_path: Path, body: str, key: str, severity: str, words: str) -> None:
    path = write(tmp_path, body)
    loaded = presets.load(path)
    problem = only(loaded, key, severity)
    assert words.lower() in (problem.message + problem.hint).lower()
    assert problem.file == str(path.resolve())
    if severity == "error":
        assert not loaded.ok
    else:
        assert loaded.ok  # warnings inform, they do not block


def test_problem_points_at_the_line_that_set_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, """
        description = "x"

        [training]
        # comment
        bf16 = true
        fp16 = true
        """)
    problem = only(presets.load(path), "training.fp16")
    assert (problem.line, problem.col) == (6, 1)
    assert problem.format().startswith(f"{path.resolve()}:6:1: error: training.fp16:")


@pytest.mark.parametrize("hardware_rule", [
    ("[quantization]\nload_in_4bit = true\n[lora]\nenabled = true\n", "quantization.load_in_4bit"),
    ("[training]\noptim = \"paged_adamw_8bit\"\n", "training.optim"),
    ("[training]\nfp16 = true\n", "training.fp16"),
])
def test_hardware_rules_apply_only_when_the_machine_is_known(tmp_path: Path, hardware_rule: tuple[str, str]) -> None:
    body, key = hardware_rule
    path = write(tmp_path, body)
    assert presets.load(path).ok  # the file itself is fine
    assert presets.load(path, context=Context(cuda_available=True, gpu_count=1)).ok
    problem = only(presets.load(path, context=Context(cuda_available=False, gpu_count=0)), key)
    assert "GPU" in problem.message


def test_unknown_keys_suggest_the_intended_one(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [training]
        learning_rte = 1e-4
        [lora]
        learning_rate = 1e-4
        [trainig]
        seed = 1
        """)
    loaded = presets.load(path)
    assert loaded.config is None
    typo = only(loaded, "training.learning_rte")
    assert typo.hint == "did you mean 'learning_rate'?" and typo.line == 2
    assert "belongs in the [training] section" in only(loaded, "lora.learning_rate").hint
    assert "did you mean 'training'?" in only(loaded, "trainig").hint


def test_bad_values_name_what_is_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [training]
        per_device_train_batch_size = 0
        lr_scheduler_type = "cosin"
        bf16 = "yes"
        learning_rate = "1e-4"
        """)
    loaded = presets.load(path)
    batch = only(loaded, "training.per_device_train_batch_size")
    assert "0 is not allowed" in batch.message and ">= 1" in batch.hint and batch.line == 2
    scheduler = only(loaded, "training.lr_scheduler_type")
    assert "did you mean 'cosine'?" in scheduler.hint
    assert "true or false" in only(loaded, "training.bf16").hint  # TOML strings are not booleans
    assert "a number" in only(loaded, "training.learning_rate").hint  # nor numbers
    assert len(loaded.errors) == 4  # all problems at once, each once


def test_malformed_toml_reports_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "[training]\nlearning_rate = 1e-4\nseed = = 3\n")
    (problem,) = presets.load(path).problems
    assert (problem.line, problem.col) == (3, 8)
    assert "malformed TOML" in problem.message


def test_missing_file_suggests_a_preset(tmp_path: Path) -> None:
    (problem,) = presets.load("qlora-8bb").problems
    assert "no preset or file named 'qlora-8bb'" in problem.message and "did you mean 'qlora-8b'?" in problem.hint


def test_require_raises_with_every_error(tmp_path: Path) -> None:
    path = write(tmp_path, "[training]\nbf16 = true\nfp16 = true\nwarmup_steps = 2.5\n")
    with pytest.raises(ConfigError) as info:
        presets.require(path)
    assert {p.key for p in info.value.problems} == {"training.fp16", "training.warmup_steps"}


def test_cli_validate_lists_all_problems_and_exits_1_without_traceback(tmp_path: Path) -> None:
    bad = write(tmp_path, "[training]\nlearning_rte = 1\nseed = -1\n")
    good = ROOT / "presets" / "demo.toml"
    out = subprocess.run([sys.executable, "-m", "runner.cli", "validate", str(good), str(bad)],
                         capture_output=True, text=True, env=python_env(), cwd=tmp_path)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert f"{bad.resolve()}:2:1: error: training.learning_rte: unknown key (did you mean 'learning_rate'?)" in out.stderr
    assert f"{bad.resolve()}:3:1: error: training.seed: -1 is not allowed" in out.stderr
    assert "demo.toml: ok" in out.stdout and "bad.toml: FAILED (2 error(s)" in out.stdout


def test_cli_validate_passes_on_good_files(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "runner.cli", "validate", "demo", "qlora-8b"],
                         capture_output=True, text=True, env=python_env(), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
