"""Preset files: comment-preserving round trips, help comments, extends, overrides, atomic saves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path

import pytest

from runner import presets
from runner.paths import shipped_presets_dir, user_presets_dir
from runner.schema import FIELDS, Config
from tests.conftest import ROOT, python_env

SHIPPED = sorted(p.stem for p in shipped_presets_dir().glob("*.toml"))


def test_the_required_presets_ship() -> None:
    assert {"demo", "lora-1b", "qlora-8b", "full-small", "qlora-70b", "pretrain-gpt"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_preset_is_valid_commented_and_described(name: str) -> None:
    loaded = presets.load(name)
    assert loaded.ok and not loaded.warnings, [p.format() for p in loaded.problems]
    text = (shipped_presets_dir() / f"{name}.toml").read_text()
    assert text.lstrip().startswith("#"), "a shipped preset starts with a comment saying what it is for"
    assert loaded.config.description


def test_qlora_8b_follows_the_reference_recipe() -> None:
    t = presets.require_config("qlora-8b").training
    assert (t.per_device_train_batch_size, t.gradient_accumulation_steps, t.num_train_epochs) == (1, 4, 5)
    assert (t.learning_rate, t.save_total_limit, t.logging_steps) == (2e-4, 3, 1)
    assert (t.optim, t.lr_scheduler_type, t.warmup_steps, t.fp16) == ("paged_adamw_8bit", "cosine", 0.05, True)


def test_pretrain_gpt_follows_the_reference_recipe() -> None:
    c = presets.require_config("pretrain-gpt")
    t = c.training
    assert c.model.from_scratch and c.model.hidden_dropout == 0.1 and c.data.max_seq_length == 2048
    assert (t.adam_beta1, t.adam_beta2, t.weight_decay, t.warmup_steps, t.max_grad_norm) == (0.9, 0.95, 0.01, 10000, 1.0)
    assert t.fp16 and t.gradient_checkpointing and t.lr_scheduler_type == "cosine" and t.learning_rate == 1e-4
    global_batch = t.per_device_train_batch_size * t.gradient_accumulation_steps * c.launch.num_processes
    assert global_batch == 512


def test_full_small_follows_the_reference_recipe() -> None:
    c = presets.require_config("full-small")
    t = c.training
    assert not c.lora.enabled and c.data.padding == "max_length" and c.data.max_seq_length == 512
    assert (t.learning_rate, t.weight_decay, t.adam_beta2, t.adam_epsilon) == (5e-5, 0.01, 0.999, 1e-8)
    assert (t.per_device_train_batch_size, t.gradient_accumulation_steps, t.max_grad_norm) == (16, 4, 1.0)
    assert t.fp16 and t.gradient_checkpointing and t.warmup_steps == 500 and t.eval_steps == 500


USER_FILE = """\
# My experiment: keep this header
description = "mine"

[training]
# I tried 1e-4 first; it diverged
learning_rate = 5e-5  # trailing note
per_device_train_batch_size = 4

[model]
name_or_path = "Qwen/Qwen2.5-0.5B"
"""


def test_save_keeps_comments_and_order_and_only_changes_what_changed(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(USER_FILE)
    loaded = presets.require(path)
    config = loaded.config.model_copy(deep=True)
    config.training.learning_rate = 2e-5
    config.lora.enabled = True
    presets.save(config, path, document=loaded.document)
    text = path.read_text()
    assert text.startswith("# My experiment: keep this header\n")
    # The exponent notation is kept; the note on the changed line explained the old value, so it says so.
    assert "# I tried 1e-4 first; it diverged\nlearning_rate = 2e-5  # trailing note (stale: written for 5e-5)\n" in text
    assert text.index("[training]") < text.index("[model]") < text.index("[lora]")  # user order kept, new table appended
    assert "per_device_train_batch_size = 4" in text
    assert "[quantization]" not in text  # untouched sections are not added
    again = presets.require_config(path)
    assert again == config
    # Saving again with no change is byte-identical.
    presets.save(again, path, document=presets.require(path).document)
    assert path.read_text() == text


def test_new_file_documents_every_field_and_reads_back_equal(tmp_path: Path) -> None:
    config = Config(description="fresh")
    config.training.learning_rate = 1e-4
    path = presets.save(config, tmp_path / "fresh.toml")
    text = path.read_text()
    for spec in FIELDS:
        # Architecture fields describe a model built from scratch; for a pretrained one they are left out.
        architecture = spec.applies == "model.from_scratch"
        assert (f"\n{spec.name} = " in text) != architecture, spec.key
    assert "# Raise: Faster learning" in text and "# Typical: 1e-5 to 5e-5" in text
    assert presets.require_config(path) == config
    bare = presets.save(config, tmp_path / "bare.toml", with_help=False).read_text()
    assert "Raise:" not in bare and presets.require_config(tmp_path / "bare.toml") == config


def test_extends_resolves_names_and_relative_paths_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "base.toml").write_text('description = "base"\n[training]\nlearning_rate = 1e-4\nseed = 7\n')
    (tmp_path / "child.toml").write_text('extends = "base.toml"\ndescription = "child"\n[training]\nseed = 8\n')
    child = presets.require_config(tmp_path / "child.toml")
    assert (child.training.learning_rate, child.training.seed, child.description) == (1e-4, 8, "child")
    (tmp_path / "of-shipped.toml").write_text('extends = "qlora-8b"\n[training]\nnum_train_epochs = 2\n')
    derived = presets.require_config(tmp_path / "of-shipped.toml")
    assert derived.quantization.load_in_4bit and derived.training.num_train_epochs == 2
    assert derived.description == ""  # a child describes itself; it does not inherit the parent's text


def test_extends_problems_point_at_the_right_file(tmp_path: Path) -> None:
    (tmp_path / "base.toml").write_text('[training]\nlearning_rte = 1\n')
    (tmp_path / "child.toml").write_text('extends = "base.toml"\n')
    (problem,) = presets.load(tmp_path / "child.toml").problems
    assert problem.file == str((tmp_path / "base.toml").resolve()) and problem.line == 2
    (tmp_path / "a.toml").write_text('extends = "b.toml"\n')
    (tmp_path / "b.toml").write_text('extends = "a.toml"\n')
    assert "loops back" in presets.load(tmp_path / "a.toml").problems[0].message
    (tmp_path / "c.toml").write_text('extends = "qlora8b"\n')
    missing = presets.load(tmp_path / "c.toml").problems[0]
    assert missing.key == "extends" and missing.line == 1 and "did you mean 'qlora-8b'?" in missing.hint


def test_save_writes_only_differences_from_the_parent(tmp_path: Path) -> None:
    config = presets.require_config("qlora-8b").model_copy(update={"extends": "qlora-8b", "description": "tweak"})
    config.training.learning_rate = 1e-4
    path = presets.save(config, tmp_path / "tweak.toml")
    body = tomllib.loads(path.read_text())
    assert body["training"] == {"learning_rate": 1e-4} and body["extends"] == "qlora-8b"
    assert presets.require_config(path) == config


def test_overrides_apply_typed_values_and_report_typos(tmp_path: Path) -> None:
    loaded = presets.require("demo", ["training.learning_rate=2e-4", "lora.enabled=true", 'lora.target_modules=["q_proj"]'])
    assert loaded.config.training.learning_rate == 2e-4 and loaded.config.lora.target_modules == ["q_proj"]
    bad = presets.load("demo", ["training.learnin_rate=1", "nonsense"])
    assert [p.hint for p in bad.errors][0].startswith("write section.key=value")
    assert any(p.key == "training.learnin_rate" and "learning_rate" in p.hint and p.file == "--set training.learnin_rate=1" for p in bad.errors)


def test_user_presets_are_listed_and_shadow_shipped_ones() -> None:
    user_presets_dir().mkdir(parents=True)
    (user_presets_dir() / "demo.toml").write_text('description = "my demo"\n')
    (user_presets_dir() / "extra.toml").write_text('description = "extra"\n')
    found = {p.name: p for p in presets.list_presets()}
    assert found["demo"].origin == "user" and found["demo"].description == "my demo"
    assert found["extra"].origin == "user" and found["qlora-8b"].origin == "shipped"
    assert presets.resolve("demo") == (user_presets_dir() / "demo.toml").resolve()


def test_digest_ignores_description_but_not_values() -> None:
    a = Config(description="a")
    b = Config(description="b")
    assert presets.config_digest(a) == presets.config_digest(b)
    b.training.seed = 1
    assert presets.config_digest(a) != presets.config_digest(b)


def test_a_failed_save_leaves_the_old_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keep.toml"
    path.write_text(USER_FILE)
    loaded = presets.require(path)

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        presets.save(Config(), path, document=loaded.document)
    assert path.read_text() == USER_FILE
    assert [p.name for p in tmp_path.iterdir()] == ["keep.toml"]  # no temp file left behind


KILL_LOOP = textwrap.dedent("""
    import sys
    from runner.atomic import atomic_write_text
    path, i = sys.argv[1], 0
    print("ready", flush=True)
    while True:
        i += 1
        atomic_write_text(path, f"# version {i}\\n" + "".join(f"k{j} = {i}\\n" for j in range(20000)) + "done = true\\n")
""")


def test_a_writer_killed_at_any_moment_never_leaves_a_torn_file(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("# version 0\ndone = true\n")
    for attempt in range(8):
        proc = subprocess.Popen([sys.executable, "-c", KILL_LOOP, str(path)], stdout=subprocess.PIPE, env=python_env(), cwd=ROOT)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(0.05 + attempt * 0.03)  # the scenario: kill it a little later each time, not a wait
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        text = path.read_text()
        assert text.startswith("# version ") and text.endswith("done = true\n")
        tomllib.loads(text)


def test_saving_a_description_into_a_file_without_one_keeps_its_header_once(tmp_path: Path) -> None:
    path = tmp_path / "plain.toml"
    path.write_text("# head\n[training]\nseed = 3\n")
    loaded = presets.require(path)
    presets.save(loaded.config.model_copy(update={"description": "new"}), path, document=loaded.document)
    assert path.read_text() == '# head\ndescription = "new"\n\n[training]\nseed = 3\n'
    assert presets.require_config(path).description == "new"
