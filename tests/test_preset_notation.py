"""Saving keeps the user's notation (`3e-4` stays `3e-4`) and flags comments that explained an old value.

Real TOML files, loaded, changed and saved through runner.presets, then read back; and once through the
editor, typing into the field as a user does.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

from textual.widgets import Input

from fixtures.monitor_app import wait_for
from runner import presets
from runner.paths import shipped_presets_dir
from runner.schema import FIELDS_BY_KEY, GROUPS
from runner.toml_edits import stale_mark
from tui.app import TunedeckApp, state_from
from tui.services import NoProbe
from tui.widgets.field_row import FieldRow, row_id

from tests.conftest import settle_editor

MINE = """\
# my run
description = "mine"

[training]
# 3e-4 suits a 7B model; 1e-3 diverged
learning_rate = 3e-4  # tuned for batch 8
max_steps = 10_000
per_device_train_batch_size = 8  # fits 24 GB
seed = 7
weight_decay = 0.01
"""


def edited(path: Path, typed: dict[str, str] | None = None, **training) -> str:
    """Load `path`, change [training] values, save it in place (as the editor does) and return the text."""
    loaded = presets.require(path)
    config = loaded.config.model_copy(deep=True)
    for name, value in training.items():
        setattr(config.training, name, value)
    presets.save(config, path, document=loaded.document, typed=typed)
    text = path.read_text()
    assert presets.require_config(path) == config  # what was written reads back as the same config
    return text


def test_an_untouched_value_keeps_its_notation_when_another_field_is_saved(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(MINE)
    text = edited(path, seed=8)
    assert text == MINE.replace("seed = 7", "seed = 8")  # nothing else moved, 3e-4 and 10_000 included


def test_a_typed_value_is_written_as_typed(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(MINE.replace("learning_rate = 3e-4  # tuned for batch 8", "learning_rate = 0.0001"))
    text = edited(path, {"training.learning_rate": "3e-4"}, learning_rate=3e-4)
    assert "\nlearning_rate = 3e-4\n" in text and "0.0003" not in text
    text = edited(path, {"training.learning_rate": "0.0005"}, learning_rate=5e-4)
    assert "\nlearning_rate = 0.0005\n" in text  # typed wins over the file's old style
    text = edited(path, {"training.weight_decay": "1E-2"}, weight_decay=0.01, seed=9)  # equal: untouched
    assert "\nweight_decay = 0.01\n" in text


def test_typed_text_that_is_not_the_value_is_not_written(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(MINE)
    text = edited(path, {"training.learning_rate": "5e-4 # sneaky", "training.seed": "8\nfp16 = true"},
                  learning_rate=5e-4, seed=8)
    assert "sneaky" not in text and "fp16" not in text
    assert "\nseed = 8\n" in text


def test_a_changed_number_keeps_the_files_style(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(MINE)
    text = edited(path, learning_rate=5e-4, max_steps=20000)
    assert "learning_rate = 5e-4  # tuned" in text  # not 0.0005
    assert "\nmax_steps = 20_000\n" in text
    text = edited(path, learning_rate=1.25e-5)
    assert "learning_rate = 1.25e-5  #" in text


def test_comments_that_explained_the_old_value_are_marked_stale(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(MINE)
    text = edited(path, learning_rate=1e-4, per_device_train_batch_size=4)
    assert f"# 3e-4 suits a 7B model; 1e-3 diverged{stale_mark('3e-4')}\n" in text  # mentions the old value
    assert f"learning_rate = 1e-4  # tuned for batch 8{stale_mark('3e-4')}\n" in text
    assert f"per_device_train_batch_size = 4  # fits 24 GB{stale_mark('8')}\n" in text
    assert "# my run\n" in text  # comments about something else are left alone
    # Changed again: the mark keeps naming what the comment was written for, it is never stacked.
    text = edited(path, learning_rate=2e-4)
    assert f"learning_rate = 2e-4  # tuned for batch 8{stale_mark('3e-4')}\n" in text
    assert text.count("stale:") == 3
    # Back to the value the comment explains: the mark goes.
    text = edited(path, learning_rate=3e-4)
    assert "learning_rate = 3e-4  # tuned for batch 8\n" in text
    assert "# 3e-4 suits a 7B model; 1e-3 diverged\n" in text
    assert tomllib.loads(text)["training"]["learning_rate"] == 3e-4
    edited(path, learning_rate=2e-4)
    text = edited(path, {"training.learning_rate": "0.0003"}, learning_rate=3e-4)  # the same value, other notation
    assert "# 3e-4 suits a 7B model; 1e-3 diverged\nlearning_rate = 0.0003  # tuned for batch 8\n" in text


def test_tunedecks_own_help_comments_are_never_marked_stale(tmp_path: Path) -> None:
    config = presets.require_config("demo")
    config.training.learning_rate = 3e-4
    # A new file: every key with its help above it; the help's typical values mention 3e-4.
    path = presets.save(config, tmp_path / "fresh.toml", typed={"training.learning_rate": "3e-4"})
    before = path.read_text()
    assert "\nlearning_rate = 3e-4\n" in before and "3e-4 for LoRA/QLoRA" in before
    config.training.learning_rate = 5e-5
    presets.save(config, path, document=presets.require(path).document)
    text = path.read_text()
    assert "stale:" not in text and "\nlearning_rate = 5e-5\n" in text
    assert text == before.replace("\nlearning_rate = 3e-4\n", "\nlearning_rate = 5e-5\n")


def no_gpu() -> NoProbe:
    return NoProbe(reason="no NVIDIA driver found", driver="")


async def test_typing_3e_4_in_the_editor_saves_3e_4(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    shutil.copy(shipped_presets_dir() / "demo.toml", path)  # learning_rate = 1e-3  # high for fine-tuning, ...
    app = TunedeckApp(state_from(presets.load(path)), probe=no_gpu)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle_editor(pilot)
        sections = app.editor.query_one("#sections")
        sections.focus()
        sections.highlighted = GROUPS.index(FIELDS_BY_KEY["training.learning_rate"].group)
        await pilot.pause()
        field = app.editor.query_one(f"#{row_id('training.learning_rate')}", FieldRow).query_one(Input)
        field.focus()
        await pilot.pause()
        await pilot.press("ctrl+u", *"3e-4")
        await wait_for(pilot, lambda: app.editor.state.config.training.learning_rate == 3e-4, what="3e-4 applied")
        # weight_decay = 0.01 in the file: only the typed text can make 0.02 come out as 2e-2
        field = app.editor.query_one(f"#{row_id('training.weight_decay')}", FieldRow).query_one(Input)
        field.focus()
        await pilot.pause()
        await pilot.press("ctrl+u", *"2e-2")
        await wait_for(pilot, lambda: app.editor.state.config.training.weight_decay == 0.02, what="2e-2 applied")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not app.editor.state.dirty
    text = path.read_text()
    assert "\nlearning_rate = 3e-4  # high for fine-tuning, right for a tiny randomly initialised model" \
           f"{stale_mark('1e-3')}\n" in text
    assert "0.0003" not in text
    assert "\nweight_decay = 2e-2\n" in text
    assert "num_train_epochs = 4  # the tiny model needs" in text  # untouched lines keep their notes unmarked
