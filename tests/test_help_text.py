"""The one help renderer (runner/schema/help_text.py): every output format for a numeric, a choice, a switch
and a path field, the screens and commands that use it, and a check that nothing else formats help."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest
from textual.content import Content
from textual.widgets import Static

from runner import presets
from runner.schema import FIELDS, FIELDS_BY_KEY, GROUPS, Config, help_text, json_schema
from runner.printable import code_markup
from runner.units import count_text
from tui import cli
from tui.app import TunedeckApp, state_from
from tui.screens.help_screen import HelpScreen
from tui.services import NoProbe
from tui.widgets.field_row import FieldRow, row_id

from tests.conftest import ROOT, settle_editor

NUMERIC, CHOICE, SWITCH, PATH = "training.learning_rate", "training.lr_scheduler_type", \
    "training.gradient_checkpointing", "data.path"


def plain(markup: str) -> str:
    """What Textual shows for `markup` (it must parse: a help text with `[` in it may not break it)."""
    return Content.from_markup(markup).plain


@pytest.mark.parametrize("key", [NUMERIC, CHOICE, PATH])
def test_every_format_of_a_field_that_is_raised_or_lowered(key: str) -> None:
    spec = FIELDS_BY_KEY[key]
    h = spec.help
    terminal = help_text.terminal_lines(spec)
    assert terminal[0].startswith(f"{key}  ({spec.label}; default {help_text.literal(spec.default)};")
    assert f"  Raise: {h.up}" in terminal and f"  Lower: {h.down}" in terminal
    assert terminal[1] == f"  {h.what}"

    comments = " ".join(line.strip() for line in help_text.toml_comment_lines(spec))
    assert f"Raise: {h.up}" in comments and f"Lower: {h.down}" in comments and "Typical: " in comments
    assert all(len(line) <= help_text.TOML_WIDTH - 2 for line in help_text.toml_comment_lines(spec))

    shown = plain(help_text.markup(spec))
    assert shown.startswith(f"{spec.label} {key}\n{h.what}")
    assert f"▲ Raise: {h.up}" in shown and f"▼ Lower: {h.down}" in shown
    assert f"Default: {help_text.literal(spec.default)}; allowed: {spec.allowed()}." in shown

    md = help_text.markdown(spec)
    assert md.startswith(f"**{spec.label}** (`{key}`)") and f"- Raise: {h.up}" in md
    assert f"Raise: {h.up}" in help_text.description(spec) and h.what in help_text.description(spec)


def test_numeric_default_and_range_are_the_schemas() -> None:
    spec = FIELDS_BY_KEY[NUMERIC]
    assert spec.allowed() in help_text.terminal_lines(spec)[0]
    assert "default 5e-05;" in help_text.terminal_lines(spec)[0]  # TOML notation, not 5.0e-05 or 0.00005


def test_a_choice_lists_its_choices() -> None:
    spec = FIELDS_BY_KEY[CHOICE]
    for rendered in (help_text.terminal_lines(spec)[0], plain(help_text.markup(spec)), help_text.markdown(spec)):
        assert "'cosine'" in rendered and "'linear'" in rendered


def test_a_path_field_shows_its_default_as_toml_text() -> None:
    spec = FIELDS_BY_KEY[PATH]
    assert 'default "tunedeck:demo";' in help_text.terminal_lines(spec)[0]
    assert 'Default: "tunedeck:demo"; allowed: a string.' in plain(help_text.markup(spec))


def test_a_switch_is_turned_on_or_off_in_every_format() -> None:
    spec = FIELDS_BY_KEY[SWITCH]
    on = spec.help.up.removeprefix("On: ")
    off = spec.help.down.removeprefix("Off: ")
    outputs = {
        "terminal": "\n".join(help_text.terminal_lines(spec)),
        "toml": " ".join(line.strip() for line in help_text.toml_comment_lines(spec)),
        "panel": plain(help_text.markup(spec)),
        "f1": plain(help_text.markup(spec, full=True)),
        "markdown": help_text.markdown(spec),
        "description": help_text.description(spec),
    }
    for name, text in outputs.items():
        assert f"When on: {on}" in text and f"When off: {off}" in text, name
        assert "Raise" not in text and "Lower:" not in text and "On: " not in text, name
    assert "Default: false; allowed: true or false." in outputs["panel"]


def test_every_switch_in_the_schema_reads_when_on_and_when_off() -> None:
    for spec in (s for s in FIELDS if s.kind == "bool"):
        labels = [part.label for part in help_text.parts(spec)]
        assert help_text.RAISE not in labels and help_text.LOWER not in labels, spec.key
        assert help_text.WHEN_ON in labels and help_text.WHEN_OFF in labels, spec.key


def test_every_field_renders_as_markup_textual_can_parse() -> None:
    for spec in FIELDS:  # `[[data.datasets]]` in a help text must show as written
        assert spec.help.what.replace("`", "") in plain(help_text.markup(spec, full=True)).replace("`", "")


def test_code_spans_are_highlighted_not_shown_as_backticks() -> None:
    spec = FIELDS_BY_KEY["data.datasets"]  # "... each a `[[data.datasets]]` table ..."
    text = help_text.markup(spec, full=True)
    shown = plain(text)
    assert "`" not in shown and "each a [[data.datasets]] table" in shown
    spans = [shown[span.start:span.end] for span in Content.from_markup(text).spans if span.style == "$accent"]
    assert "[[data.datasets]]" in spans
    # An unpaired backtick, and a backslash just before a span, stay exactly as written.
    assert plain(code_markup("a ` b")) == "a ` b"
    assert plain(code_markup("C:\\`x` [b]y")) == "C:\\`x` [b]y"


def test_the_f1_page_says_when_a_field_applies() -> None:
    shown = plain(help_text.markup(FIELDS_BY_KEY["lora.r"], full=True))
    assert "Applies only when lora.enabled is true." in shown
    assert "Applies only when" not in plain(help_text.markup(FIELDS_BY_KEY["lora.r"]))


def test_json_schema_descriptions_come_from_the_renderer() -> None:
    schema = json_schema()
    training = schema["$defs"]["TrainingSection"]["properties"]
    for key in (NUMERIC, CHOICE, SWITCH):
        spec = FIELDS_BY_KEY[key]
        assert training[spec.name]["description"] == help_text.description(spec)
        assert training[spec.name]["markdownDescription"] == help_text.markdown(spec)
    assert "When on:" in training["gradient_checkpointing"]["markdownDescription"]


def test_explain_prints_the_renderers_text(capsys) -> None:
    assert cli.main(["explain", SWITCH]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines() == help_text.terminal_lines(FIELDS_BY_KEY[SWITCH])
    assert "When on:" in out and "Raise" not in out


def test_a_new_preset_has_the_renderers_comments_above_each_key(tmp_path: Path) -> None:
    target = presets.save(Config(), tmp_path / "fresh.toml")
    text = target.read_text()
    spec = FIELDS_BY_KEY[SWITCH]
    block = "\n".join(f"# {line}" for line in help_text.toml_comment_lines(spec))
    assert f"{block}\n{spec.name} = false" in text
    assert "# When on: " in text and "# On: " not in text
    assert tomllib.loads(text)["training"]["gradient_checkpointing"] is False


# --- nothing else formats help -----------------------------------------------------------------------

LABELS = re.compile(r"(?:▲|▼|\b(?:Raise|Lower|When on|When off|Typical)\s*:)")


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


RENDERER = ROOT / "runner" / "schema" / "help_text.py"


def _other_modules() -> list[Path]:
    """Every module of the app but the renderer."""
    return [path for path in sorted([*(ROOT / "runner").rglob("*.py"), *(ROOT / "tui").rglob("*.py")])
            if path != RENDERER]


def test_no_other_module_spells_the_help_labels() -> None:
    offenders = []
    for path in _other_modules():
        for line, text in _string_constants(path):
            if LABELS.search(text) and not text.lstrip().startswith(("\n##", "##")):  # a screen's HELP page
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {text[:60]!r}")
    assert offenders == []
    assert any(LABELS.search(text) for _, text in _string_constants(RENDERER))  # the check can see labels


def test_no_module_reads_the_raw_help_parts_but_the_renderer() -> None:
    """Reading spec.help.up / .down / .typical is formatting them; only advice is used on its own (context)."""
    offenders = []
    for path in _other_modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and node.attr in ("up", "down", "typical")
                    and isinstance(node.value, ast.Attribute) and node.value.attr == "help"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


# --- the screens ---------------------------------------------------------------------------------------


def no_gpu() -> NoProbe:
    return NoProbe(reason="no NVIDIA driver found", driver="")


async def test_the_help_panel_and_f1_say_when_on_for_a_switch_and_the_demo_model_size() -> None:
    app = TunedeckApp(state_from(presets.load("demo")), probe=no_gpu)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle_editor(pilot)
        editor = app.editor
        sections = editor.query_one("#sections")
        sections.focus()
        sections.highlighted = GROUPS.index(FIELDS_BY_KEY[SWITCH].group)
        await pilot.pause()
        editor.query_one(f"#{row_id(SWITCH)}", FieldRow).query_one("Switch").focus()
        await pilot.pause()
        panel = str(editor.query_one("#help-text", Static).render())
        assert "● When on:" in panel and "○ When off:" in panel and "Raise" not in panel
        # the demo model's size, in units that say something (it has 918,656 parameters)
        assert "This model has about 919K parameters." in panel and "0.00B" not in panel
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        page = str(app.screen.query_one("#full-help", Static).render())
        assert "When on:" in page and "When off:" in page and "Raise" not in page
        assert "This model has about 919K parameters." in page


def test_parameter_counts_are_written_in_sensible_units() -> None:
    from runner.demo_spec import demo_param_count

    assert count_text(demo_param_count()) == "919K"
    assert [count_text(n) for n in (950, 1_234_567, 494_032_768, 7_615_616_512, 70_553_706_496, 999_999)] == \
        ["950", "1.23M", "494M", "7.62B", "70.6B", "1.00M"]
    assert count_text(None) == "?"


def test_applies_conditions_read_and_hold_as_written() -> None:
    from runner.schema import applies, condition_terms

    config = Config()
    epochs, steps = FIELDS_BY_KEY["training.num_train_epochs"], FIELDS_BY_KEY["data.messages_field"]
    assert applies(epochs, config)  # max_steps -1: epochs decide
    config.training.max_steps = 10
    assert not applies(epochs, config)
    assert not applies(steps, config)  # text data
    config.data.format = "chat"
    assert applies(steps, config)
    config.data.format = "text"
    config.data.datasets = [{"path": "a.jsonl", "format": "chat"}]
    assert applies(steps, config)  # a listed dataset may be chat and take the column name from here
    assert help_text.condition_text("!training.max_steps>0") == "training.max_steps is not above 0"
    assert help_text.condition_text("data.format=chat|data.datasets") == "data.format is 'chat' or data.datasets is set"
    assert help_text.condition_text("lora.enabled", labels=True) == "Use LoRA is on"
    assert help_text.condition_text("launch.strategy=deepspeed", labels=True) == "Distribution is deepspeed"
    for spec in FIELDS:  # every condition names real fields
        for term in condition_terms(spec.applies or "lora.enabled"):
            assert term.path in FIELDS_BY_KEY, spec.key


def test_the_try_screens_sampling_knobs_are_the_schemas() -> None:
    from tui.screens.try_screen import SAMPLING_KNOBS

    assert set(SAMPLING_KNOBS) == {"generation.temperature", "generation.top_p", "generation.top_k"}
    config = Config()
    config.generation.do_sample = False
    from runner.schema import applies

    assert not any(applies(FIELDS_BY_KEY[key], config) for key in SAMPLING_KNOBS)
