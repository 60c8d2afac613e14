"""The editor model driven without widgets: load a real preset, type values, read what follows, save real TOML."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

from runner import presets
from runner.problems import ConfigError
from tui import drafts
from tui.editor_model import EditorModel
from tui.services import NoProbe

from tests.test_tui_editor import user_preset  # noqa: F401  # a fixture: a copy of the demo preset


@pytest.fixture
def demo() -> EditorModel:
    model = EditorModel.load("demo")
    model.set_gpu_report(NoProbe(reason="no NVIDIA driver found", driver=""))
    return model


def test_loading_the_demo_gives_a_clean_document_and_its_figures(demo: EditorModel) -> None:
    assert demo.state.name == "demo" and demo.state.shipped and demo.needs_name()
    assert not demo.state.dirty and not demo.blocking_problems
    assert demo.derived.effective_batch_size == 16  # the demo's batch, one process
    assert demo.gauge.estimate is not None and demo.gauge.budget_label == "GiB target"
    assert demo.gauge.budget == 24 * 1024**3  # no GPU: sized for the default target card
    assert demo.invalid_note() is None
    assert "No GPU detected; sizing for a 24 GB card." in demo.facts()


def test_the_model_imports_no_textual_and_no_ml_library() -> None:
    import subprocess

    from tests.conftest import HEAVY_MODULES, ROOT, python_env

    code = ("import sys\nfrom tui.editor_model import EditorModel\n"
            "m = EditorModel.load('demo'); m.set_text('training.seed', '7'); m.figures\n"
            f"print(sorted(n for n in ('textual', *{HEAVY_MODULES!r}) if n in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=python_env(), cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_preset_that_cannot_be_read_raises_with_its_problems(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[training\nlearning_rate = 1\n")
    with pytest.raises(ConfigError) as caught:
        EditorModel.load(broken)
    assert caught.value.problems and "broken.toml" in str(caught.value)


def test_typed_text_sets_the_value_and_marks_the_document_modified(demo: EditorModel) -> None:
    assert demo.set_text("training.learning_rate", "3e-4") is None
    assert demo.state.config.training.learning_rate == 3e-4
    assert demo.state.dirty and "training.learning_rate" in demo.changed_keys
    assert "(modified)" in demo.title()
    assert demo.state.typed == {"training.learning_rate": "3e-4"}  # presets.save writes it as typed


def test_invalid_text_is_kept_blocks_and_leaves_the_last_valid_value(demo: EditorModel) -> None:
    reason = demo.set_text("training.per_device_train_batch_size", "0")
    assert reason and "greater than or equal to 1" in reason
    assert demo.state.config.training.per_device_train_batch_size == 16  # the last valid value
    assert demo.state.invalid["training.per_device_train_batch_size"][0] == "0"
    assert [p.key for p in demo.blocking_problems] == ["training.per_device_train_batch_size"]
    assert demo.error_groups == {"Batch & steps"}
    note = demo.invalid_note()
    assert note.startswith("per_device_train_batch_size is invalid: ") and "last valid value" in note
    assert demo.invalid_note(with_reason=False) == \
        "per_device_train_batch_size is invalid; figures are for the last valid value"
    assert demo.set_text("training.learning_rate", "fast") and "(and 1 more)" in demo.invalid_note()
    # Fixing both clears the state and the note.
    assert demo.set_text("training.per_device_train_batch_size", "4") is None
    assert demo.set_text("training.learning_rate", "0.001") is None
    assert not demo.state.invalid and demo.invalid_note() is None and not demo.blocking_problems
    assert demo.derived.effective_batch_size == 4


def test_an_echo_of_the_current_value_is_not_an_edit(demo: EditorModel) -> None:
    assert demo.is_echo("training.seed", 42, None)
    assert not demo.is_echo("training.seed", 7, None)
    demo.set_text("training.seed", "x")
    assert not demo.is_echo("training.seed", 42, None)  # invalid text is showing: 42 again is a fix


def test_derived_numbers_follow_batch_and_accumulation(demo: EditorModel) -> None:
    before = demo.derived.steps_per_epoch
    demo.set_text("training.per_device_train_batch_size", "4")
    demo.set_text("training.gradient_accumulation_steps", "2")
    assert demo.derived.effective_batch_size == 8
    demo.set_num_examples(1600)
    assert demo.derived.steps_per_epoch == 200
    assert before != demo.derived.steps_per_epoch


def test_cross_field_rules_appear_with_the_per_field_problems(demo: EditorModel) -> None:
    demo.set_value("training.bf16", True)
    demo.set_value("training.fp16", True)
    messages = [p.message for p in demo.blocking_problems]
    assert any("fp16 and bf16 are both on" in m for m in messages)
    assert "Precision & memory" in demo.error_groups


def test_the_estimate_follows_batch_size_and_the_target_card() -> None:
    model = EditorModel.load("lora-1b")
    model.set_gpu_report(NoProbe(reason="no NVIDIA driver found", driver=""))
    model.set_text("training.per_device_train_batch_size", "8")
    big = model.gauge
    assert big.verdict == "does not fit" and model.suggestions
    model.set_text("training.per_device_train_batch_size", "1")
    assert model.gauge.estimate.peak_bytes < big.estimate.peak_bytes
    model.set_target_gb(80)
    assert model.gauge.budget == 80 * 1024**3 and model.gauge.verdict == "fits"


def test_suggestions_are_withheld_while_a_field_is_invalid() -> None:
    model = EditorModel.load("lora-1b")
    model.set_text("training.per_device_train_batch_size", "8")
    assert model.suggestions
    model.set_text("training.learning_rate", "1e-")
    assert model.suggestions == () and model.gauge.suggestions  # there, but not offered
    model.set_text("training.learning_rate", "1e-4")
    first = model.suggestions[0]
    assert model.apply_suggestion(0) == []
    assert all(getattr(getattr(model.state.config, k.split(".")[0]), k.split(".")[1]) == v
               for k, v in first.changes.items())


def test_save_writes_real_toml_keeping_comments_and_notation(user_preset: Path) -> None:
    model = EditorModel.load(user_preset)
    assert not model.needs_name()
    model.set_text("training.learning_rate", "3e-4")
    model.set_text("training.weight_decay", "0.10")
    model.save(user_preset)
    text = user_preset.read_text()
    assert "learning_rate = 3e-4" in text and "weight_decay = 0.10" in text  # as typed
    assert "# CPUs train fastest and safest in float32" in text  # the file's own comments survive
    assert tomllib.loads(text)["training"]["learning_rate"] == 3e-4
    assert not model.state.dirty and model.state.path == user_preset.resolve()
    reloaded = EditorModel.load(user_preset)
    assert reloaded.state.config == model.state.config
    # A later edit of another field keeps the earlier notation (it is in the file now).
    model.set_text("training.seed", "7")
    model.save(user_preset)
    assert "learning_rate = 3e-4" in user_preset.read_text()


def test_a_key_the_file_lacks_is_added_with_its_help(user_preset: Path) -> None:
    model = EditorModel.load(user_preset)
    assert "adam_epsilon" not in user_preset.read_text()
    model.set_text("training.adam_epsilon", "1e-6")
    model.save(user_preset)
    text = user_preset.read_text()
    assert "adam_epsilon = " in text and tomllib.loads(text)["training"]["adam_epsilon"] == 1e-6
    before_key = text[:text.index("adam_epsilon = ")].splitlines()[-1]
    assert before_key.startswith("#")  # the field's help, written above it


def test_save_is_refused_while_invalid_and_writes_nothing(user_preset: Path) -> None:
    model = EditorModel.load(user_preset)
    before = user_preset.read_text()
    model.set_text("training.per_device_train_batch_size", "0")
    with pytest.raises(ConfigError):
        model.save(user_preset)
    assert user_preset.read_text() == before


def test_save_as_moves_the_document_and_drops_its_drafts(user_preset: Path, tmp_path: Path) -> None:
    model = EditorModel.load(user_preset)
    model.set_text("training.seed", "7")
    model.write_draft()
    assert drafts.find_draft(model.state.source) is not None
    target = tmp_path / "other.toml"
    model.save(target)
    assert model.state.path == target.resolve() and model.state.name == "other"
    assert drafts.find_draft(str(user_preset.resolve())) is None
    assert presets.load(target).config.training.seed == 7
    assert presets.load(user_preset).config.training.seed == 42  # the original is untouched


def test_export_writes_elsewhere_and_keeps_editing_here(user_preset: Path, tmp_path: Path) -> None:
    model = EditorModel.load(user_preset)
    model.set_text("training.seed", "9")
    model.save(tmp_path / "exported.toml", export=True)
    assert model.state.path == user_preset.resolve() and model.state.dirty
    assert presets.load(tmp_path / "exported.toml").config.training.seed == 9


def test_a_draft_is_written_while_modified_and_dropped_when_not(demo: EditorModel) -> None:
    demo.set_text("training.seed", "7")
    demo.write_draft()
    assert drafts.find_draft(demo.state.source).config.training.seed == 7
    demo.revert("training.seed")
    demo.write_draft()
    assert drafts.find_draft(demo.state.source) is None


def two_gpus():
    from runner.gpu import GpuInfo, GpuReport

    gib = 1024**3
    return GpuReport(available=True, reason="", driver="550.54", gpus=[
        GpuInfo(index=0, name="NVIDIA A100-SXM4-80GB", total_bytes=80 * gib, free_bytes=10 * gib, used_bytes=70 * gib),
        GpuInfo(index=1, name="NVIDIA A100-SXM4-80GB", total_bytes=80 * gib, free_bytes=70 * gib, used_bytes=10 * gib),
    ])


def test_with_gpus_the_budget_is_the_least_free_of_the_gpus_the_run_uses() -> None:
    model = EditorModel.load("lora-1b")
    model.set_gpu_report(two_gpus())
    assert model.has_gpus and model.gpu_count() == 2
    assert model.gauge.budget == 10 * 1024**3 and model.gauge.budget_label == "GiB free"  # all GPUs: the fuller one
    assert [g.index for g, _ in model.gauge.gpu_verdicts] == [0, 1]
    model.set_value("launch.gpu_ids", "1")
    assert model.gauge.budget == 70 * 1024**3  # only GPU 1 is used
    assert "GPU: 2 x NVIDIA A100-SXM4-80GB, 80.0 GiB each." in model.facts()
    assert model.context().cuda_available and model.context().gpu_count == 2
