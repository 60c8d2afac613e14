"""The editor driven through the keyboard with Textual's Pilot: real app, real presets, real files.

Only the GPU probe is replaced (this machine has no GPU): every test uses a fixed no-GPU report.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from textual.widgets import Input, Static

from runner import presets
from runner.paths import shipped_presets_dir
from runner.schema import GROUPS
from tui import drafts
from tui.app import TunedeckApp, state_from
from tui.screens.confirm import ConfirmScreen
from tui.screens.editor import EditorScreen
from tui.screens.problems_screen import ProblemsScreen
from tui.services import NoProbe
from tui.widgets.field_form import FieldForm
from tui.widgets.field_row import FieldRow, row_id
from tui.widgets.problems_list import ProblemsList

from tests.conftest import settle_editor as settle

SIZE = (100, 40)


def no_gpu() -> NoProbe:
    return NoProbe(reason="no NVIDIA driver found", driver="")


def make_app(source: str | Path = "demo", **kwargs) -> TunedeckApp:
    return TunedeckApp(state_from(presets.load(source)), probe=no_gpu, **kwargs)


@pytest.fixture
def user_preset(tmp_path: Path) -> Path:
    """A copy of the demo preset (with its comments) that tests may overwrite."""
    path = tmp_path / "mine.toml"
    shutil.copy(shipped_presets_dir() / "demo.toml", path)
    return path


async def goto_group(pilot, group: str) -> None:
    await settle(pilot)
    editor = pilot.app.editor
    editor.query_one("#sections").focus()
    editor.query_one("#sections").highlighted = GROUPS.index(group)
    await pilot.pause()


async def focus_input(pilot, key: str) -> Input:
    row = pilot.app.editor.query_one(f"#{row_id(key)}", FieldRow)
    field = row.query_one(Input)
    field.focus()
    await pilot.pause()
    return field


async def retype(pilot, key: str, text: str) -> FieldRow:
    await focus_input(pilot, key)
    await pilot.press("ctrl+u", *list(text))  # ctrl+u clears the input, then type like a user
    await pilot.pause(0.2)
    return pilot.app.editor.query_one(f"#{row_id(key)}", FieldRow)


async def test_typing_an_invalid_value_shows_the_reason_and_blocks_save(user_preset: Path) -> None:
    app = make_app(user_preset)
    async with app.run_test(size=SIZE) as pilot:
        await goto_group(pilot, "Batch & steps")
        row = await retype(pilot, "training.per_device_train_batch_size", "0")
        error = row.query_one(".field-error", Static)
        assert row.has_class("-invalid")
        assert "greater than or equal to 1" in str(error.render())
        problems = str(app.editor.query_one(ProblemsList).render())
        assert "Batch size per GPU" in problems
        before = user_preset.read_text()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, ProblemsScreen)
        assert user_preset.read_text() == before  # refused: nothing written
        await pilot.press("escape")
        # Fixing the value clears the error and applies it.
        row = await retype(pilot, "training.per_device_train_batch_size", "4")
        assert not row.has_class("-invalid")
        assert app.editor.state.config.training.per_device_train_batch_size == 4
        assert "effective batch 4" in str(app.editor.query_one("#derived").render())


async def test_not_a_number_is_refused_before_it_reaches_the_config() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await goto_group(pilot, "Optimizer")
        row = await retype(pilot, "training.learning_rate", "fast")
        assert row.has_class("-invalid")
        assert "not a number" in str(row.query_one(".field-error", Static).render())
        assert app.editor.state.config.training.learning_rate == 1e-3  # the demo's value is kept
        row = await retype(pilot, "training.learning_rate", "2e-4")
        assert app.editor.state.config.training.learning_rate == 2e-4


async def test_cross_field_errors_appear_in_the_problems_list() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await goto_group(pilot, "Precision & memory")
        for key in ("training.bf16", "training.fp16"):
            switch_row = app.editor.query_one(f"#{row_id(key)}", FieldRow)
            switch_row.query_one("Switch").focus()
            await pilot.press("space")
        await pilot.pause(0.2)
        assert app.editor.state.config.training.bf16 and app.editor.state.config.training.fp16
        assert "fp16 and bf16 are both on" in str(app.editor.query_one(ProblemsList).render())
        assert "!" in str(app.editor.query_one("#sections").get_option("Precision & memory").prompt)


async def test_lora_fields_appear_only_when_lora_is_on() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await goto_group(pilot, "LoRA")
        form = app.editor.query_one(FieldForm)
        assert form.row("lora.r") is None
        assert "8 field(s) hidden: they apply when Use LoRA is on" in str(
            app.editor.query_one("#hidden-note", Static).render())
        app.editor.query_one(f"#{row_id('lora.enabled')}").query_one("Switch").focus()
        await pilot.press("space")
        await pilot.pause()
        assert app.editor.state.config.lora.enabled
        assert form.row("lora.r") is not None and form.row("lora.target_modules") is not None
        assert app.focused is form.row("lora.enabled").query_one("Switch")  # focus stays on the switch


async def test_help_panel_follows_focus_and_f1_opens_full_help() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await goto_group(pilot, "Optimizer")
        await focus_input(pilot, "training.weight_decay")
        text = str(app.editor.query_one("#help-text", Static).render())
        assert "Weight decay" in text and "Raise" in text and "Lower" in text and "Typical" in text
        assert "1,520 training examples" in text  # advice in context: this dataset's size
        await pilot.press("f1")
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        assert isinstance(app.screen, EditorScreen)


async def test_save_keeps_comments_and_reloads_the_edit(user_preset: Path) -> None:
    app = make_app(user_preset)
    async with app.run_test(size=SIZE) as pilot:
        await goto_group(pilot, "Optimizer")
        await retype(pilot, "training.learning_rate", "0.0003")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not app.editor.state.dirty
    text = user_preset.read_text()
    assert "# The embedded demo: trains on CPU" in text  # the file's own comments survive
    assert "# CPUs train fastest and safest in float32" in text
    reloaded = presets.load(user_preset)
    assert reloaded.ok and reloaded.config.training.learning_rate == 3e-4


async def test_save_as_a_shipped_preset_writes_to_the_user_dir() -> None:
    from runner.paths import user_presets_dir

    app = make_app("demo")
    async with app.run_test(size=SIZE) as pilot:
        await goto_group(pilot, "Optimizer")
        await retype(pilot, "training.learning_rate", "0.0005")
        await pilot.press("ctrl+s")  # a shipped preset is never overwritten: Save asks for a name
        await pilot.pause()
        name = app.screen.query_one("#save-as-name", Input)
        name.value = "my-demo"
        await pilot.press("enter")
        await pilot.pause()
        assert app.editor.state.path == (user_presets_dir() / "my-demo.toml").resolve()
    saved = presets.load(user_presets_dir() / "my-demo.toml")
    assert saved.ok and saved.config.training.learning_rate == 5e-4
    assert (shipped_presets_dir() / "demo.toml").read_text().count("learning_rate = 1e-3") == 1


async def test_quit_with_unsaved_edits_asks_first(user_preset: Path) -> None:
    app = make_app(user_preset)
    async with app.run_test(size=SIZE) as pilot:
        await goto_group(pilot, "Optimizer")
        await retype(pilot, "training.learning_rate", "0.0002")
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("c")  # cancel: keep editing
        await pilot.pause()
        assert isinstance(app.screen, EditorScreen) and app.is_running
        await pilot.press("ctrl+q")
        await pilot.pause()
        await pilot.press("s")  # save, then quit
        await pilot.pause()
    assert presets.load(user_preset).config.training.learning_rate == 2e-4
    assert app.return_code == 0


async def test_quit_without_edits_does_not_ask() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert not app.is_running


async def test_edits_are_autosaved_and_restored_on_next_start(user_preset: Path, monkeypatch) -> None:
    monkeypatch.setattr("tui.screens.editor.AUTOSAVE_DELAY", 0.1)
    app = make_app(user_preset)
    async with app.run_test(size=SIZE) as pilot:
        await goto_group(pilot, "Batch & steps")
        await retype(pilot, "training.per_device_train_batch_size", "3")
        await pilot.pause(0.5)
        await app.workers.wait_for_complete()
        draft = drafts.find_draft(str(user_preset.resolve()))
        assert draft is not None and draft.config.training.per_device_train_batch_size == 3
        app.exit()  # as if the SSH session dropped: no save, no prompt

    restored = make_app(user_preset)
    async with restored.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(restored.screen, ConfirmScreen)
        await pilot.press("r")
        await pilot.pause()
        state = restored.editor.state
        assert state.config.training.per_device_train_batch_size == 3
        assert state.dirty  # restored edits are still unsaved
        form = restored.editor.query_one(FieldForm)
        await goto_group(pilot, "Batch & steps")
        assert form.row("training.per_device_train_batch_size").query_one(Input).value == "3"


async def test_discarding_a_draft_deletes_it(user_preset: Path) -> None:
    loaded = presets.load(user_preset)
    changed = loaded.config.model_copy(update={"training": loaded.config.training.model_copy(update={"seed": 7})})
    drafts.write_draft(str(user_preset.resolve()), "mine", user_preset, changed)
    app = make_app(user_preset)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("d")
        await pilot.pause()
        assert app.editor.state.config.training.seed == 42
    assert drafts.find_draft(str(user_preset.resolve())) is None


async def test_changes_view_lists_and_reverts_edits() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await goto_group(pilot, "Batch & steps")
        await retype(pilot, "training.seed", "7")
        await pilot.press("f3")
        await pilot.pause()
        table = app.screen.query_one("#changes-table")
        keys = [row.value for row in table.rows]
        assert "training.seed" in keys and "training.learning_rate" in keys  # edited, and preset-vs-default
        table.move_cursor(row=keys.index("training.seed"))
        await pilot.press("r")
        await pilot.pause()
        assert app.editor.state.config.training.seed == 42
        assert not app.editor.state.dirty
        await pilot.press("escape")
        await pilot.pause()
        assert app.editor.query_one(FieldForm).row("training.seed").query_one(Input).value == "42"


async def test_open_picker_lists_presets_and_opens_one() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await pilot.pause()
        options = app.screen.query_one("#open-list")
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        target = next(i for i in ids if i.endswith("lora-1b.toml"))
        options.highlighted = ids.index(target)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, EditorScreen)
        assert app.editor.state.name == "lora-1b"
        assert app.editor.state.config.lora.enabled


async def test_command_palette_offers_context_commands() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        titles = [c.title for c in app.get_system_commands(app.editor)]
        for expected in ("Open preset", "Save", "Save as", "Export TOML", "Launch", "Toggle help panel"):
            assert expected in titles
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert type(app.screen).__name__ == "CommandPalette"


async def test_launch_is_refused_with_problems_shown() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await goto_group(pilot, "Data")
        await retype(pilot, "data.eval_split", "2")
        await pilot.press("f5")
        await pilot.pause()
        assert isinstance(app.screen, ProblemsScreen)
        assert "Eval fraction" in str(app.screen.query_one(ProblemsList).render())


def gauge_text(app: TunedeckApp) -> str:
    return str(app.editor.query_one("#gauge-body", Static).render())


def peak_gib(app: TunedeckApp) -> float:
    import re

    return float(re.search(r"Peak ([\d.]+) GiB", gauge_text(app)).group(1))


async def test_gauge_follows_batch_size_and_quantization() -> None:
    app = make_app("lora-1b")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await goto_group(pilot, "Batch & steps")
        await retype(pilot, "training.per_device_train_batch_size", "8")
        await pilot.pause(0.3)
        start = peak_gib(app)
        assert app.editor.query_one("#gauge").has_class("-nofit")  # 1B LoRA at batch 8 > a 24 GB target
        await retype(pilot, "training.per_device_train_batch_size", "1")
        await pilot.pause(0.3)
        smaller = peak_gib(app)
        assert smaller < start
        await goto_group(pilot, "Quantization")
        app.editor.query_one(f"#{row_id('quantization.load_in_4bit')}").query_one("Switch").focus()
        await pilot.press("space")
        await pilot.pause(0.3)
        # 4-bit base weights change the estimate; on a 1B model with a 128k vocabulary the fp32 upcasts
        # (embeddings, head copy, fp32 MLP outputs) outweigh the packed weights, so it is not smaller
        assert peak_gib(app) != smaller
        assert app.editor.query_one("#gauge").has_class("-fits")


async def test_a_suggestion_applies_with_one_key() -> None:
    app = make_app("lora-1b")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        suggestion = app.editor.estimate.suggestions[0]
        await pilot.press("f6")
        await pilot.pause(0.3)
        for key, value in suggestion.changes.items():
            section, name = key.split(".")
            assert getattr(getattr(app.editor.state.config, section), name) == value
        assert peak_gib(app) == pytest.approx(suggestion.peak_bytes / 2**30, abs=0.06)


async def test_without_a_gpu_the_user_picks_a_target_card() -> None:
    app = make_app("lora-1b")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "24.0 GiB target" in gauge_text(app) and "No GPU" in gauge_text(app)
        app.editor.query_one("#target-card").value = 80
        await pilot.pause(0.3)
        assert "80.0 GiB target" in gauge_text(app)
        assert app.editor.query_one("#gauge").has_class("-fits")
