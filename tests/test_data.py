"""Data you can see before you train: the [data] settings, the one prompt renderer, the data check
before launch, the preview (`tunedeck data`, the Data screen) and the trainer's data errors.

Real files in a temporary directory, the real demo tokenizer (a byte-level BPE built locally), the
real CLI in a subprocess and the real Textual app driven by Pilot.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runner import presets
from runner.schema import FIELDS_BY_KEY, Config
from fixtures.monitor_app import wait_for
from tests.conftest import ROOT, imported_heavy_modules, python_env

NEW_FIELDS = ("data.chat_template", "data.datasets", "data.max_samples", "data.role_field", "data.content_field",
              "data.role_map", "data.roles_to_train")


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def config_with(*overrides: str) -> Config:
    return presets.require("demo", list(overrides)).config


@pytest.fixture(scope="module")
def tokenizer(shared_cache_dir: Path):
    import os

    os.environ["TUNEDECK_CACHE_DIR"] = str(shared_cache_dir)
    from runner.data_preview import load_tokenizer

    return load_tokenizer(Config())  # the demo model's tokenizer, as the trainer loads it


# --- the schema fields ---------------------------------------------------------------------------------
def test_new_data_fields_have_full_help_and_round_trip_through_a_preset(tmp_path: Path) -> None:
    for key in NEW_FIELDS:
        h = FIELDS_BY_KEY[key].help
        assert h.what and h.typical, key
        assert (h.up and h.down) or key in ("data.role_field", "data.content_field"), key
    text = """extends = "demo"

[data]
format = "chat"
chat_template = "chatml"
role_field = "from"
content_field = "value"
role_map = ["human=user", "gpt=assistant", "bot=assistant"]
roles_to_train = ["assistant"]
max_samples = 100

[[data.datasets]]
path = "chat.jsonl"
messages_field = "conversations"
weight = 2.0

[[data.datasets]]
path = "docs.jsonl"
format = "text"
max_samples = 10
"""
    path = tmp_path / "mix.toml"
    path.write_text(text)
    loaded = presets.load(path)
    assert loaded.ok, [p.format() for p in loaded.problems]
    config = loaded.config
    assert [s.path for s in config.data.datasets] == ["chat.jsonl", "docs.jsonl"]
    assert config.data.datasets[0].weight == 2.0 and config.data.datasets[1].max_samples == 10
    assert presets.dumps(config, loaded.document) == text  # unchanged: byte for byte
    fresh = tmp_path / "fresh.toml"
    presets.save(config.model_copy(update={"extends": ""}), fresh)  # a new file with every field's help
    again = presets.load(fresh)
    assert again.ok and again.config.data == config.data
    assert "[[data.datasets]]" in fresh.read_text() and "# Several datasets trained together" in fresh.read_text()


def test_bad_data_settings_are_reported_with_did_you_mean(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('extends = "demo"\n[data]\nchat_template = "chatm"\nrole_map = ["gpt=asistant"]\n'
                    'roles_to_train = ["assistent"]\n')
    messages = [p.format() for p in presets.load(path).errors]
    assert any("data.chat_template" in m and "did you mean 'chatml'" in m for m in messages), messages
    assert any("data.role_map" in m and "did you mean 'gpt=assistant'" in m for m in messages), messages
    assert any("data.roles_to_train" in m and "did you mean 'assistant'" in m for m in messages), messages
    path.write_text('extends = "demo"\n[[data.datasets]]\npth = "x.jsonl"\n')
    (problem,) = presets.load(path).errors
    assert "[[data.datasets]] 1: 'pth': unknown key" in problem.message and "did you mean 'path'" in problem.hint


# --- the renderer ------------------------------------------------------------------------------------------
def test_sample_prompts_render_exactly_like_the_training_rows_prompt() -> None:
    from runner.prompts import generation_prompt, render_row

    data = config_with().data
    row = {"instruction": "Repeat the word three times.", "input": "lamp", "output": "lamp lamp lamp"}
    trained_prompt = render_row(row, data).segments[0].text
    assert "### Input:\nlamp" in trained_prompt
    for prompt in config_with().generation.prompts:  # the demo's shipped prompts
        rendered = generation_prompt(prompt, data)
        assert "### Input:\n" in rendered and rendered.endswith("### Response:\n")
    assert generation_prompt("Repeat the word three times. ### Input: lamp", data) == trained_prompt
    assert "### Input" not in generation_prompt("Say hi.", data)  # no input: no input section, as in training


def test_chat_template_choice_tokenizer_named_or_file(tmp_path: Path, tokenizer) -> None:
    from runner.prompts import CHAT_TEMPLATES, TemplateError, render_row, resolve_chat_template

    data = config_with("data.format='chat'").data
    row = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                        {"role": "assistant", "content": "Hello"}]}
    own = resolve_chat_template("tokenizer", tokenizer.chat_template, "<s>", "</s>")
    assert render_row(row, data, own).text == tokenizer.apply_chat_template(row["messages"], tokenize=False)
    for name in CHAT_TEMPLATES:
        rendered = render_row(row, data, resolve_chat_template(name, None, "<s>", "</s>"))
        assert rendered.trained_text.startswith("Hello"), (name, rendered)
        assert "Hi" not in rendered.trained_text and "brief" not in rendered.trained_text
    chatml = render_row(row, data, resolve_chat_template("chatml")).text
    assert chatml.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>")
    jinja = tmp_path / "mine.jinja"
    jinja.write_text("{% for m in messages %}{{ m['role'] | upper }}> {{ m['content'] }}\n{% endfor %}")
    mine = render_row(row, data, resolve_chat_template(str(jinja)))
    assert mine.text == "SYSTEM> Be brief.\nUSER> Hi\nASSISTANT> Hello\n"
    with pytest.raises(TemplateError, match="did you mean 'chatml'"):
        resolve_chat_template("chatlm")
    with pytest.raises(TemplateError, match="no chat template of its own"):
        resolve_chat_template("tokenizer", None)


def test_sharegpt_rows_map_their_keys_and_roles() -> None:
    from runner.prompts import RowError, render_row, resolve_chat_template

    data = config_with("data.format='chat'", "data.messages_field='conversations'", "data.role_field='from'",
                       "data.content_field='value'").data
    row = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}
    rendered = render_row(row, data, resolve_chat_template("chatml"))
    assert rendered.trained_text == "Hello<|im_end|>\n" and "<|im_start|>user\nHi" in rendered.text
    with pytest.raises(RowError, match=r"role 'bot'.*data.role_map.*bot=assistant"):
        render_row({"conversations": [{"from": "bot", "value": "x"}]}, data, resolve_chat_template("chatml"))


# --- the data check before launch ---------------------------------------------------------------------
BAD_DATA = {  # name: (rows or None for a missing file, overrides, the one message expected)
    "missing file": (None, (), "no such file or directory"),
    "empty file": ([], (), "the file is empty"),
    "output null": ([{"instruction": "a", "input": "", "output": None}], (), "field 'output' is null"),
    "output dict": ([{"instruction": "a", "output": {"text": "x"}}], (), "field 'output' is an object (a dict)"),
    "output number": ([{"instruction": "a", "output": 3}], (), "field 'output' is a number (3)"),
    "broken line": ([{"instruction": "a", "output": "b"}, "{not json"], (), "not valid JSON"),
    "missing field": ([{"instruction": "a", "answer": "b"}], (), "no field 'output'"),
    "chat without content": ([{"messages": [{"role": "user"}]}], ("data.format='chat'",), "'content' is missing"),
    "unknown role": ([{"messages": [{"role": "bot", "content": "x"}]}], ("data.format='chat'",),
                     "has role 'bot', which the chat template does not know"),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_each_bad_data_case_is_one_clear_message_and_run_refuses_without_a_run_dir(case: str, tmp_path: Path) -> None:
    from runner.data_check import check

    rows, overrides, expected = BAD_DATA[case]
    path = tmp_path / "train.jsonl"
    if rows is not None:
        write_jsonl(path, rows)
    config = config_with(f"data.path='{path}'", *overrides)
    problems = check(config)
    assert len(problems) == 1 and expected in problems[0].message, [p.format() for p in problems]
    shown = problems[0].format()
    assert str(path) in shown and "data.path" in shown
    if case == "broken line":
        assert problems[0].line == 2 and f"{path}:2:" in shown

    runs = tmp_path / "runs"
    env = python_env() | {"TUNEDECK_RUNS_DIR": str(runs), "HF_HUB_OFFLINE": "1"}
    args = [a for o in overrides for a in ("--set", o)]
    cli = subprocess.run([sys.executable, "-m", "runner.cli", "run", "demo", "--set", f"data.path='{path}'", *args],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert cli.returncode == 2, cli.stderr
    assert expected in cli.stderr and "Traceback" not in cli.stderr and "not launching demo" in cli.stderr
    assert not runs.exists() or not any(runs.iterdir())  # refused before any run directory exists


def test_validate_here_checks_the_data_and_hub_ids_are_not_checked_offline(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [{"instruction": "a", "output": None}])
    env = python_env() | {"HF_HUB_OFFLINE": "1"}
    preset = tmp_path / "p.toml"
    preset.write_text(f'extends = "demo"\n[data]\npath = "{path}"\n')
    here = subprocess.run([sys.executable, "-m", "runner.cli", "validate", str(preset), "--here"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert here.returncode == 1 and f"{path}:1:" in here.stderr and "FAILED" in here.stdout
    plain = subprocess.run([sys.executable, "-m", "runner.cli", "validate", str(preset)], capture_output=True, text=True,
                           env=env, timeout=120)
    assert plain.returncode == 0  # without --here the files are not this command's business
    preset.write_text('extends = "demo"\n[data]\npath = "someorg/some-dataset"\n')
    hub = subprocess.run([sys.executable, "-m", "runner.cli", "validate", str(preset), "--here"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert hub.returncode == 0 and "not checked" in hub.stderr and "error" not in hub.stderr


def test_many_bad_rows_list_the_first_few_and_count_the_rest(tmp_path: Path) -> None:
    from runner.data_check import MAX_REPORTED, check

    path = write_jsonl(tmp_path / "t.jsonl", [{"instruction": "a", "output": None}] * 12)
    problems = check(config_with(f"data.path='{path}'"))
    assert [p.line for p in problems[:MAX_REPORTED]] == list(range(1, MAX_REPORTED + 1))
    assert "7 more bad row(s)" in problems[-1].message and len(problems) == MAX_REPORTED + 1


# --- the trainer's data path (the same errors when the check was skipped) -----------------------------------
@pytest.mark.parametrize("case", ["output null", "output dict", "broken line", "empty file", "chat without content",
                                  "unknown role"])
def test_training_reports_bad_rows_as_data_errors_not_strings_or_tracebacks(case: str, tmp_path: Path, tokenizer) -> None:
    from runner.diagnose import DataError
    from runner.train_data import prepare

    rows, overrides, expected = BAD_DATA[case]
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    with pytest.raises(DataError, match=expected.replace("(", r"\(").replace(")", r"\)")) as err:
        prepare(config_with(f"data.path='{path}'", *overrides), tokenizer)
    assert str(path) in str(err.value)


def test_a_hub_style_dataset_with_a_null_answer_fails_with_the_row_not_the_string_none(tokenizer) -> None:
    import datasets

    from runner.diagnose import DataError
    from runner.train_data import tokenize_dataset

    data = config_with().data
    ds = datasets.Dataset.from_list([{"instruction": "a", "input": "", "output": "fine"},
                                     {"instruction": "b", "input": "", "output": None}])
    with pytest.raises(DataError, match=r"row 2: field 'output' is null"):
        tokenize_dataset(ds, tokenizer, data, 64, "t")


# --- the preview: one code path with training -----------------------------------------------------------------
def trained_text(tokenizer, example: dict) -> str:
    return tokenizer.decode([t["id"] for t in example["tokens"] if t["trained"]])


def masked_text(tokenizer, example: dict) -> str:
    return tokenizer.decode([t["id"] for t in example["tokens"] if not t["trained"]])


def test_preview_masks_the_prompt_in_the_instruction_format(tokenizer) -> None:
    from runner.data_preview import preview

    r = preview(config_with(), tokenizer, n=3)
    first = r["examples"][0]
    assert trained_text(tokenizer, first) == "lamp lamp lamp</s>"
    assert masked_text(tokenizer, first) == "### Instruction:\nRepeat the word three times.\n\n### Input:\nlamp\n\n### Response:\n"
    assert r["totals"]["read"] == 1600 and r["totals"]["train"] + r["totals"]["eval"] == 1600
    assert r["totals"]["eval_source"] == "data.eval_split" and r["errors"] == []
    assert r["lengths"]["max"] <= 64 and r["lengths"]["p50"] <= r["lengths"]["p99"] <= r["lengths"]["max"]
    assert sum(b["count"] for b in r["histogram"]) == r["lengths"]["count"] == 1600
    masked_all = preview(config_with("data.completion_only_loss=false"), tokenizer, n=1)["examples"][0]
    assert all(t["trained"] for t in masked_all["tokens"])


def test_preview_trains_only_assistant_turns_in_the_chat_format(tokenizer) -> None:
    from runner.data_preview import preview

    r = preview(config_with("data.format='chat'"), tokenizer, n=1)
    (ex,) = r["examples"]
    assert trained_text(tokenizer, ex) == "lamp lamp lamp</s>\n"  # the reply and its end-of-turn marker
    assert masked_text(tokenizer, ex) == "<s>user: Repeat the word three times. lamp</s>\n<s>assistant: "
    assert r["template"] == "the tokenizer's own"
    both = preview(config_with("data.format='chat'", "data.roles_to_train=['user', 'assistant']"), tokenizer, n=1)
    assert "Repeat the word" in trained_text(tokenizer, both["examples"][0])
    chatml = preview(config_with("data.format='chat'", "data.chat_template='chatml'", "data.max_seq_length=128"),
                     tokenizer, n=1)
    assert chatml["template"] == "chatml" and trained_text(tokenizer, chatml["examples"][0]) == "lamp lamp lamp<|im_end|>\n"


def test_preview_trains_every_token_but_the_first_in_the_text_format(tokenizer) -> None:
    from runner.data_preview import preview

    (ex,) = preview(config_with("data.format='text'"), tokenizer, n=1)["examples"]
    assert all(t["trained"] for t in ex["tokens"])
    assert tokenizer.decode([t["id"] for t in ex["tokens"]]) == "Repeat the word three times. lamp -> lamp lamp lamp</s>"


def test_truncation_counts_and_answers_cut_off_are_zero_trainable_errors(tokenizer) -> None:
    from runner.data_preview import preview

    # Demo rows are 26-35 tokens; the prompt alone is ~25: at 27 tokens some answers survive, some do not.
    r = preview(config_with("data.max_seq_length=27", "data.eval_split=0.0", "training.eval_strategy='no'"),
                tokenizer, n=0)
    lengths, tot, zero = r["lengths"], r["totals"], r["zero_trainable"]
    assert lengths["over_max"] == sum(1 for b in r["histogram"] if b.get("over") for _ in range(b["count"])) > 0
    assert tot["truncated"] + zero["rows"] == lengths["over_max"]
    assert zero["rows"] > 0 and "cuts off the whole answer" in " ".join(zero["causes"])
    assert r["errors"] and "zero trainable tokens" in r["errors"][0]
    assert r["examples"] and r["examples"][-1]["status"] == "no_trainable"  # one such row is shown
    dropped = preview(config_with("data.max_seq_length=27", "data.truncation=false", "data.eval_split=0.0",
                                  "training.eval_strategy='no'"), tokenizer, n=0)
    assert dropped["totals"]["dropped"]["too_long"] == lengths["over_max"] and dropped["totals"]["truncated"] == 0


def test_a_template_that_trains_nothing_is_flagged_with_its_cause(tmp_path: Path, tokenizer) -> None:
    from runner.data_preview import preview

    path = write_jsonl(tmp_path / "c.jsonl", [{"messages": [{"role": "user", "content": "only a question"}]}] * 3)
    from runner.diagnose import DataError

    with pytest.raises(DataError, match="no training examples left.*no trainable tokens.*no turn of a role in data.roles_to_train"):
        preview(config_with(f"data.path='{path}'", "data.format='chat'", "data.eval_split=0.0",
                            "training.eval_strategy='no'"), tokenizer, n=1)


def test_mixed_datasets_load_with_their_own_format_columns_samples_and_weight(tmp_path: Path, tokenizer) -> None:
    from runner.data_preview import preview
    from runner.train_data import prepare

    chat = write_jsonl(tmp_path / "chat.jsonl", [{"conversations": [{"from": "human", "value": f"q{i}"},
                                                                      {"from": "gpt", "value": f"a{i}"}]}
                                                 for i in range(10)])
    docs = write_jsonl(tmp_path / "docs.jsonl", [{"body": f"document number {i}"} for i in range(20)])
    preset = tmp_path / "mix.toml"
    preset.write_text(f"""extends = "demo"
[data]
format = "chat"
role_field = "from"
content_field = "value"
messages_field = "conversations"
eval_split = 0.0
[training]
eval_strategy = "no"
[[data.datasets]]
path = "{chat}"
weight = 2.0
[[data.datasets]]
path = "{docs}"
format = "text"
text_field = "body"
max_samples = 8
weight = 0.5
""")
    config = presets.require(preset).config
    data = prepare(config, tokenizer, keep_rows=True)
    counts = {s.label: (s.read, s.kept, s.used) for s in data.report.sources}
    assert counts == {"data.datasets[1]": (10, 10, 20), "data.datasets[2]": (8, 8, 4)}
    assert data.num_train_examples == len(data.train) == 24
    from runner.derived import count_examples

    assert count_examples(config) == 24  # the editor's step counts see the same mixture
    texts = [tokenizer.decode(ids) for ids in data.train["input_ids"]]
    assert sum("document number" in t for t in texts) == 4 and sum("user: q" in t for t in texts) == 20
    r = preview(config, tokenizer, n=30)
    kinds = {ex["source"] for ex in r["examples"]}
    assert kinds == {"data.datasets[1]", "data.datasets[2]"} and r["formats"] == ["chat", "text"]


# --- the CLI and the TUI ------------------------------------------------------------------------------------
def test_tunedeck_data_prints_counts_lengths_and_the_mask(shared_cache_dir: Path) -> None:
    env = python_env() | {"TUNEDECK_CACHE_DIR": str(shared_cache_dir), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "runner.cli", "data", "demo", "--n", "2"], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "rows: read 1600, kept 1600" in out.stdout and "p99" in out.stdout
    assert "### Response:↵\n⟦lamp lamp lamp</s>⟧" in out.stdout
    as_json = subprocess.run([sys.executable, "-m", "runner.data_preview", "demo", "--json", "--n", "1"],
                             capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    result = json.loads(as_json.stdout)
    assert as_json.returncode == 0 and result["examples"][0]["tokens"][0]["id"] >= 0
    bad = subprocess.run([sys.executable, "-m", "runner.cli", "data", "demo", "--set", "data.path='/nope/x.jsonl'"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert bad.returncode == 1 and "no such file or directory" in bad.stderr and "Traceback" not in bad.stderr
    from runner import data_lengths

    assert data_lengths.lookup(presets.require("demo").config)["max"] == result["lengths"]["max"]  # for the estimate


def test_the_data_screen_module_imports_no_heavy_library() -> None:
    assert imported_heavy_modules("import tui.screens.data_screen, runner.data_check, runner.prompts") == []


def editor_app(source: str = "demo", overrides: list[str] | None = None):
    """The real app on `source`, without a GPU."""
    from tui.app import TunedeckApp, state_from
    from tui.services import NoProbe

    return TunedeckApp(state_from(presets.load(source, overrides or [])), probe=lambda: NoProbe(reason="test", driver=""))


async def press_for(pilot, key: str, screen_type: type):
    """Press `key` and wait for `screen_type` to be on top; it."""
    await pilot.press(key)
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, screen_type) and pilot.app.screen.is_mounted,
                   what=f"{key} to open {screen_type.__name__}")
    return pilot.app.screen


async def preview_loaded(pilot, screen) -> None:
    """The data screen's subprocess has loaded the tokenizer and the data."""
    await wait_for(pilot, lambda: screen.result is not None, timeout=300, what="the data preview")


async def test_data_screen_opens_from_the_editor_and_shows_the_preview(shared_cache_dir: Path, monkeypatch) -> None:
    from textual.widgets import Static

    from tests.conftest import settle_editor
    from tui.screens.data_screen import DataScreen

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    app = editor_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await settle_editor(pilot)
        screen = await press_for(pilot, "f10", DataScreen)
        await preview_loaded(pilot, screen)
        assert "totals" in screen.result, screen.result
        summary = str(screen.query_one("#data-summary", Static).render())
        assert "read 1600, kept 1600" in summary and "p99" in summary
        examples = screen.query_one("#data-examples", Static)
        text = examples.render()
        trained = "".join(text.plain[s.start:s.end] for s in text.spans if "underline" in str(s.style))
        assert "lamp lamp lamp" in trained and "Instruction" not in trained
        await pilot.press("i")
        assert "‹" in examples.render().plain  # token ids on demand
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, DataScreen), what="Esc closes the data screen")


# --- the memory estimate can use the data's measured lengths ----------------------------------------------
def test_the_estimate_uses_the_longest_row_the_preview_measured_and_says_so() -> None:
    from runner import data_lengths
    from runner.estimate import estimate

    config = presets.require("lora-1b").config  # max_seq_length 1024, dynamic padding
    plain = estimate(config)
    assert plain.seq_source == "max_seq_length" and plain.seq_tokens == config.data.max_seq_length
    assert data_lengths.lookup(config) is None
    data_lengths.record(config, {"max": 200, "p99": 150, "count": 10})
    measured = estimate(config, data_lengths=data_lengths.lookup(config))
    assert measured.seq_tokens == 200 and measured.seq_source == "longest row in the data"
    assert measured.peak_bytes < plain.peak_bytes and any("longest row (200 tokens" in n for n in measured.notes)
    other = config.model_copy(update={"data": config.data.model_copy(update={"max_seq_length": 2048})})
    assert data_lengths.lookup(other) is None  # another data set-up: nothing measured for it
    packed = config.model_copy(update={"data": config.data.model_copy(update={"packing": True})})
    assert estimate(packed, data_lengths={"max": 200}).seq_source == "max_seq_length"  # packed rows fill up


async def test_the_editor_gauge_says_when_it_sized_for_the_measured_data() -> None:
    from textual.widgets import Static

    from runner import data_lengths
    from tests.conftest import settle_editor
    from tui.widgets.memory_gauge import MemoryGauge

    data_lengths.record(presets.load("lora-1b").config, {"max": 200, "p99": 150})
    app = editor_app("lora-1b")
    async with app.run_test(size=(160, 48)) as pilot:
        await settle_editor(pilot)
        body = str(app.editor.query_one(MemoryGauge).query_one("#gauge-body", Static).render())
        assert "activations at 200 tokens: longest row in the data" in body


async def test_the_launch_dialog_refuses_bad_data_and_opens_the_data_screen(tmp_path: Path, monkeypatch) -> None:
    from textual.widgets import Button, Static

    from tests.conftest import settle_editor
    from tui.screens.data_screen import DataScreen
    from tui.screens.launch_dialog import LaunchDialog

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("TUNEDECK_RUNS_DIR", str(tmp_path / "runs"))
    bad = write_jsonl(tmp_path / "train.jsonl", [{"instruction": "a", "output": None}])
    app = editor_app("demo", [f"data.path='{bad}'"])
    async with app.run_test(size=(120, 40)) as pilot:
        await settle_editor(pilot)
        dialog = await press_for(pilot, "f5", LaunchDialog)
        await app.workers.wait_for_complete()
        await pilot.pause()
        problems = str(dialog.query_one("#launch-problems", Static).render())
        assert f"{bad}:1: data.path: field 'output' is null" in problems and "Launch refused" in problems
        assert dialog.query_one("#launch-go", Button).disabled
        await pilot.press("enter")  # refused: no run directory appears
        assert not (tmp_path / "runs").exists()
        screen = await press_for(pilot, "d", DataScreen)
        await preview_loaded(pilot, screen)
        shown = str(screen.query_one("#data-summary", Static).render())
        assert "field 'output' is null" in shown and "nothing is launched" in shown


def test_the_eval_split_is_held_out_per_source_before_repeats(tmp_path: Path, tokenizer) -> None:
    from runner.derived import count_examples
    from runner.train_data import prepare

    path = write_jsonl(tmp_path / "t.jsonl", [{"text": f"row number {i}"} for i in range(40)])
    preset = tmp_path / "p.toml"
    preset.write_text(f'extends = "demo"\n[data]\nformat = "text"\neval_split = 0.1\n'
                      f'[[data.datasets]]\npath = "{path}"\nweight = 3.0\n')
    config = presets.require(preset).config
    data = prepare(config, tokenizer)
    train = {tuple(x) for x in data.train["input_ids"]}
    held = {tuple(x) for x in data.eval["input_ids"]}
    assert data.num_eval_examples == 4 and data.num_train_examples == 36 * 3 == count_examples(config)
    assert not train & held  # a repeated row never lands on both sides
