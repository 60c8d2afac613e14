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
from runner.schema import FIELDS_BY_KEY, GROUPS, get_value
from tui import drafts
from tui.app import TunedeckApp, state_from
from tui.screens.confirm import ConfirmScreen
from tui.screens.editor import EditorScreen
from tui.screens.problems_screen import ProblemsScreen
from tui.services import NoProbe
from tui.values import format_value
from tui.widgets.field_form import FieldForm
from tui.widgets.field_row import FieldRow, row_id
from tui.widgets.problems_list import ProblemsList

from tests.conftest import settle_editor as settle
from tests.fixtures.monitor_app import wait_for

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
    await pilot.press("escape", "home", *["down"] * GROUPS.index(group))  # Esc: to the section list
    await wait_for(pilot, lambda: editor.form.group == group, what=f"the {group} fields")


async def focus_input(pilot, key: str) -> Input:
    editor = pilot.app.editor
    await wait_for(pilot, lambda: editor.form.row(key) is not None, what=f"the row of {key}")
    field = editor.form.row(key).query_one(Input)
    field.focus()
    await wait_for(pilot, lambda: pilot.app.focused is field, what=f"focus on {key}")
    return field


def took(editor: EditorScreen, key: str, text: str) -> bool:
    """The editor has `text` for `key` (valid, invalid, or the value it already had) and shows what follows."""
    state = editor.model.state
    if key in state.invalid:
        seen = state.invalid[key][0] == text
    else:
        seen = state.typed.get(key) == text or format_value(FIELDS_BY_KEY[key], get_value(state.config, key)) == text
    return seen and not editor.figures_pending


async def retype(pilot, key: str, text: str) -> FieldRow:
    await focus_input(pilot, key)
    await pilot.press("ctrl+u", *list(text))  # ctrl+u clears the input, then type like a user
    await wait_for(pilot, lambda: took(pilot.app.editor, key, text), what=f"{key} = {text!r} in the editor")
    return pilot.app.editor.form.row(key)


async def press_and_wait(pilot, key: str, condition, what: str) -> None:
    await pilot.press(key)
    await wait_for(pilot, condition, what=what)


async def edit_learning_rate_then(pilot, text: str, key: str) -> None:
    """On the Optimizer group, type a learning rate, then press `key` (save, quit, ...)."""
    await goto_group(pilot, "Optimizer")
    await retype(pilot, "training.learning_rate", text)
    await pilot.press(key)


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
        await press_and_wait(pilot, "ctrl+s", lambda: isinstance(app.screen, ProblemsScreen), "the problems")
        assert user_preset.read_text() == before  # refused: nothing written
        await press_and_wait(pilot, "escape", lambda: isinstance(app.screen, EditorScreen), "the editor")
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
        config = lambda: app.editor.state.config.training  # noqa: E731
        await wait_for(pilot, lambda: config().bf16 and config().fp16 and not app.editor.figures_pending,
                       what="both switches on")
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
        await wait_for(pilot, lambda: form.row("lora.r") is not None, what="the LoRA rows")
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
        await press_and_wait(pilot, "f1", lambda: type(app.screen).__name__ == "HelpScreen", "the full help")
        await press_and_wait(pilot, "escape", lambda: isinstance(app.screen, EditorScreen), "the editor")


async def test_save_keeps_comments_and_reloads_the_edit(user_preset: Path) -> None:
    app = make_app(user_preset)
    async with app.run_test(size=SIZE) as pilot:
        await edit_learning_rate_then(pilot, "3e-4", "ctrl+s")
        await wait_for(pilot, lambda: not app.editor.state.dirty, what="the save")
    text = user_preset.read_text()
    assert "# The embedded demo: trains on CPU" in text  # the file's own comments survive
    assert "# CPUs train fastest and safest in float32" in text
    reloaded = presets.load(user_preset)
    assert reloaded.ok and reloaded.config.training.learning_rate == 3e-4
    assert "learning_rate = 3e-4" in text  # written as typed


async def test_save_as_a_shipped_preset_writes_to_the_user_dir() -> None:
    from runner.paths import user_presets_dir

    app = make_app("demo")
    async with app.run_test(size=SIZE) as pilot:
        await edit_learning_rate_then(pilot, "0.0005", "ctrl+s")  # a shipped preset is never overwritten
        await wait_for(pilot, lambda: app.screen.query("#save-as-name"), what="Save asks for a name")
        name = app.screen.query_one("#save-as-name", Input)
        name.value = "my-demo"
        await press_and_wait(pilot, "enter", lambda: not app.editor.state.shipped, "the save")
        assert app.editor.state.path == (user_presets_dir() / "my-demo.toml").resolve()
    saved = presets.load(user_presets_dir() / "my-demo.toml")
    assert saved.ok and saved.config.training.learning_rate == 5e-4
    assert (shipped_presets_dir() / "demo.toml").read_text().count("learning_rate = 1e-3") == 1


async def test_quit_with_unsaved_edits_asks_first(user_preset: Path) -> None:
    app = make_app(user_preset)
    async with app.run_test(size=SIZE) as pilot:
        await edit_learning_rate_then(pilot, "0.0002", "ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the unsaved-edits question")
        await press_and_wait(pilot, "c", lambda: isinstance(app.screen, EditorScreen), "cancel: keep editing")
        assert app.is_running
        await press_and_wait(pilot, "ctrl+q", lambda: isinstance(app.screen, ConfirmScreen), "the question again")
        await press_and_wait(pilot, "s", lambda: not app.is_running, "save, then quit")
    assert presets.load(user_preset).config.training.learning_rate == 2e-4
    assert app.return_code == 0


async def test_quit_without_edits_does_not_ask() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await press_and_wait(pilot, "ctrl+q", lambda: not app.is_running, "quit")


async def test_edits_are_autosaved_and_restored_on_next_start(user_preset: Path, monkeypatch) -> None:
    monkeypatch.setattr("tui.screens.editor.AUTOSAVE_DELAY", 0.1)
    app = make_app(user_preset)
    source = str(user_preset.resolve())
    async with app.run_test(size=SIZE) as pilot:
        await goto_group(pilot, "Batch & steps")
        await retype(pilot, "training.per_device_train_batch_size", "3")

        def draft_written() -> bool:
            draft = drafts.find_draft(source)
            return draft is not None and draft.config.training.per_device_train_batch_size == 3

        await wait_for(pilot, draft_written, what="the autosaved draft")
        app.exit()  # as if the SSH session dropped: no save, no prompt

    restored = make_app(user_preset)
    async with restored.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(restored.screen, ConfirmScreen), what="the draft offer")
        await press_and_wait(pilot, "r", lambda: restored.editor.state.config.training.per_device_train_batch_size == 3,
                             "the restored draft")
        state = restored.editor.state
        assert state.config.training.per_device_train_batch_size == 3
        assert state.dirty  # restored edits are still unsaved
        form = restored.editor.query_one(FieldForm)
        await goto_group(pilot, "Batch & steps")
        await wait_for(pilot, lambda: form.row("training.per_device_train_batch_size") is not None, what="the row")
        assert form.row("training.per_device_train_batch_size").query_one(Input).value == "3"


async def test_discarding_a_draft_deletes_it(user_preset: Path) -> None:
    loaded = presets.load(user_preset)
    changed = loaded.config.model_copy(update={"training": loaded.config.training.model_copy(update={"seed": 7})})
    drafts.write_draft(str(user_preset.resolve()), "mine", user_preset, changed)
    app = make_app(user_preset)
    source = str(user_preset.resolve())
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the draft offer")
        await press_and_wait(pilot, "d", lambda: drafts.find_draft(source) is None, "the draft deleted")
        assert isinstance(app.screen, EditorScreen)
        assert app.editor.state.config.training.seed == 42


async def test_changes_view_lists_and_reverts_edits() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await goto_group(pilot, "Batch & steps")
        await retype(pilot, "training.seed", "7")
        await press_and_wait(pilot, "f3", lambda: app.screen.query("#changes-table"), "the changes view")
        table = app.screen.query_one("#changes-table")
        keys = [row.value for row in table.rows]
        assert "training.seed" in keys and "training.learning_rate" in keys  # edited, and preset-vs-default
        table.move_cursor(row=keys.index("training.seed"))
        await press_and_wait(pilot, "r", lambda: app.editor.state.config.training.seed == 42, "the revert")
        assert not app.editor.state.dirty
        await press_and_wait(pilot, "escape", lambda: isinstance(app.screen, EditorScreen), "the editor")
        assert app.editor.query_one(FieldForm).row("training.seed").query_one(Input).value == "42"


async def test_open_picker_lists_presets_and_opens_one() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await press_and_wait(pilot, "ctrl+o", lambda: app.screen.query("#open-list"), "the open picker")
        options = app.screen.query_one("#open-list")
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        target = next(i for i in ids if i.endswith("lora-1b.toml"))
        options.highlighted = ids.index(target)
        await press_and_wait(pilot, "enter", lambda: app.editor.state.name == "lora-1b", "lora-1b opened")
        assert isinstance(app.screen, EditorScreen)
        assert app.editor.state.config.lora.enabled


async def test_command_palette_offers_context_commands() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        titles = [c.title for c in app.get_system_commands(app.editor)]
        for expected in ("Open preset", "Save", "Save as", "Export TOML", "Launch", "Toggle help panel"):
            assert expected in titles
        await press_and_wait(pilot, "ctrl+p", lambda: type(app.screen).__name__ == "CommandPalette", "the palette")


async def test_launch_is_refused_with_problems_shown() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await goto_group(pilot, "Data")
        await retype(pilot, "data.eval_split", "2")
        await press_and_wait(pilot, "f5", lambda: isinstance(app.screen, ProblemsScreen), "the problems")
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
        start = peak_gib(app)
        assert app.editor.query_one("#gauge").has_class("-nofit")  # 1B LoRA at batch 8 > a 24 GB target
        await retype(pilot, "training.per_device_train_batch_size", "1")
        smaller = peak_gib(app)
        assert smaller < start
        await goto_group(pilot, "Quantization")
        app.editor.query_one(f"#{row_id('quantization.load_in_4bit')}").query_one("Switch").focus()
        await pilot.press("space")
        await wait_for(pilot, lambda: app.editor.state.config.quantization.load_in_4bit and not app.editor.figures_pending,
                       what="4-bit on")
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
        first = next(iter(suggestion.changes.items()))
        await wait_for(pilot, lambda: get_value(app.editor.state.config, first[0]) == first[1]
                       and not app.editor.figures_pending, what="the suggestion applied")
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
        await wait_for(pilot, lambda: "80.0 GiB target" in gauge_text(app), what="the 80 GB target")
        assert app.editor.query_one("#gauge").has_class("-fits")


# --- the small things, tried at 80x24 by pressing keys ------------------------------------------------------
SMALL = (80, 24)


async def test_escape_in_a_field_goes_back_to_the_section_list() -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        sections = app.editor.query_one("#sections")
        sections.focus()
        await pilot.press("down", "down", "down")  # Model, Data, LoRA, Quantization
        await wait_for(pilot, lambda: app.editor.form.group == GROUPS[3], what="the fourth group")
        await pilot.press("enter")  # into its first field
        await wait_for(pilot, lambda: app.editor.focused_key is not None, what="focus in a field")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.focused is sections, what="focus back on the sections")
        assert sections.highlighted == 3 and app.editor.form.group == GROUPS[3]
        # From a text field of another group too, after an edit.
        await goto_group(pilot, "Optimizer")
        await retype(pilot, "training.learning_rate", "2e-4")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.focused is sections, what="focus back on the sections")
        assert sections.highlighted == GROUPS.index("Optimizer")
        assert app.editor.state.config.training.learning_rate == 2e-4  # the edit stays


def palette_prompts(app: TunedeckApp) -> list[str]:
    options = app.screen.query_one("CommandList")
    return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]


async def search_palette(pilot, text: str) -> list[str]:
    app = pilot.app
    await settle(pilot)
    await press_and_wait(pilot, "ctrl+p", lambda: type(app.screen).__name__ == "CommandPalette", "the palette")
    await pilot.press(*text)
    await wait_for(pilot, lambda: any("(" in p for p in palette_prompts(app)), what=f"fields matching {text!r}")
    return palette_prompts(app)


async def test_the_palette_finds_lora_fields_and_jumps_to_one() -> None:
    app = make_app("lora-1b")
    async with app.run_test(size=SMALL) as pilot:
        prompts = await search_palette(pilot, "lora")
        names = [p.splitlines()[0] for p in prompts]
        lora_rows = [n for n in names if "(lora." in n]
        assert len(lora_rows) >= 8 and all("(lora." in n for n in names[:len(lora_rows)])  # LoRA fields first
        assert any("(training.learning_rate)" in n for n in names)  # its help mentions LoRA
        await pilot.press("backspace", "backspace", "backspace", "backspace", *"lora rank")
        await wait_for(pilot, lambda: palette_prompts(app) and "(lora.r)" in palette_prompts(app)[0],
                       what="the rank first")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.editor.focused_key == "lora.r", what="focus on the LoRA rank")
        assert isinstance(app.screen, EditorScreen) and app.editor.form.group == "LoRA"
        assert app.editor.query_one("#sections").highlighted == GROUPS.index("LoRA")
        await pilot.press("ctrl+u", "3", "2")  # the focused field takes typing
        await wait_for(pilot, lambda: app.editor.state.config.lora.r == 32, what="r = 32")


async def test_the_palette_jump_to_a_hidden_field_says_what_switches_it_on() -> None:
    app = make_app("demo")  # LoRA is off: its fields are hidden
    async with app.run_test(size=SMALL) as pilot:
        await search_palette(pilot, "lora rank")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.editor.focused_key == "lora.enabled", what="focus on Use LoRA")
        messages = [n.message for n in app._notifications]
        assert any("is hidden: it applies when Use LoRA is on" in m for m in messages)


async def test_figures_say_when_a_field_is_invalid() -> None:
    app = make_app("lora-1b")
    async with app.run_test(size=SMALL) as pilot:
        await goto_group(pilot, "Batch & steps")
        await retype(pilot, "training.per_device_train_batch_size", "8")
        assert "F6" in gauge_text(app)  # a suggestion to fit is offered
        derived = lambda: str(app.editor.query_one("#derived").render())  # noqa: E731
        assert "invalid" not in derived()
        await retype(pilot, "training.per_device_train_batch_size", "8x")
        assert "per_device_train_batch_size is invalid; figures are for the last valid value" in derived()
        assert "not a whole number" in str(app.editor.form.row("training.per_device_train_batch_size")
                                           .query_one(".field-error", Static).render())  # the reason, by the field
        assert "per_device_train_batch_size is invalid" in gauge_text(app).replace("\n", " ")
        assert "F6" not in gauge_text(app)  # no fixes computed from a value the user no longer sees
        await pilot.press("f6")
        assert app.editor.state.config.training.per_device_train_batch_size == 8  # nothing applied
        await retype(pilot, "training.per_device_train_batch_size", "8")
        assert "invalid" not in derived() and "F6" in gauge_text(app)


def failing_probe():
    raise RuntimeError("NVML exploded")


async def test_a_failing_worker_is_shown_by_name() -> None:
    app = TunedeckApp(state_from(presets.load("demo")), probe=failing_probe)
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(pilot, lambda: app.editor.ready, what="the editor")

        def shown() -> bool:
            return any("probe GPUs failed: RuntimeError: NVML exploded" in n.message for n in app._notifications)

        await wait_for(pilot, shown, what="the probe's failure")
        assert app.is_running  # the app keeps going
        await wait_for(pilot, lambda: "GPU probe failed" in gauge_text(app), what="the gauge stops waiting")


async def test_a_preset_load_that_fails_unexpectedly_is_shown_not_waited_for(monkeypatch) -> None:
    def broken_load(source, *args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("runner.presets.load", broken_load)  # an internal failure, not a user's mistake
    app = TunedeckApp(source="demo", probe=no_gpu)
    async with app.run_test(size=SMALL) as pilot:
        problems = lambda: str(app.editor.query_one(ProblemsList).render())  # noqa: E731
        await wait_for(pilot, lambda: "Could not load demo" in problems(), what="the load failure")
        assert "RuntimeError" not in problems() and "disk on fire" in problems()
        await wait_for(pilot, lambda: any("load preset failed: RuntimeError: disk on fire" in n.message
                                          for n in app._notifications), what="the worker-failure notification")
        assert app.is_running and not app.editor.ready
