"""The exported standalone script renders instruction rows with runner.prompts' own format: the same
text, and the same trained part, as tunedeck's training for the same row."""

from __future__ import annotations

import ast

import pytest

from runner import presets
from runner.export.script import standalone_script
from runner.prompts import render_row

EOS = 0


class CharTokenizer:
    """One id per character (the edge: no tokenizer download); the script only calls it and reads eos."""

    eos_token_id = EOS

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [ord(c) for c in text]}


def script_functions(source: str) -> dict:
    """The exported script's data constants and row functions, without its torch/transformers imports."""
    tree = ast.parse(source)
    wanted = {"DATA", "IGNORE", "PROMPT_WITH_INPUT", "PROMPT_NO_INPUT", "encode", "with_eos", "tokenize_example"}
    body = [node for node in tree.body
            if (isinstance(node, ast.Assign) and any(getattr(t, "id", None) in wanted for t in node.targets))
            or (isinstance(node, ast.FunctionDef) and node.name in wanted)]
    namespace: dict = {}
    exec(compile(ast.Module(body=body, type_ignores=[]), "exported-script", "exec"), namespace)  # noqa: S102
    return namespace


@pytest.mark.parametrize("completion_only", [True, False])
@pytest.mark.parametrize("row", [
    {"instruction": "Repeat the word three times.", "input": "lamp", "output": "lamp lamp lamp"},
    {"instruction": "Name a colour.", "input": "", "output": "blue"},
    {"instruction": "Name a colour.", "input": "   ", "output": "red"},
])
def test_the_exported_script_renders_a_row_as_runner_prompts_does(row, completion_only):
    config = presets.require("demo", ["model.name_or_path='/models/tiny'", "data.path='/data/rows.jsonl'",
                                      f"data.completion_only_loss={str(completion_only).lower()}"]).config
    script = script_functions(standalone_script(config, name="demo"))
    ids, labels = script["tokenize_example"](row, CharTokenizer())
    rendered = render_row(row, config.data)
    assert ids[-1] == EOS and rendered.add_eos
    assert "".join(map(chr, ids[:-1])) == rendered.text
    trained = "".join(chr(i) for i, label in zip(ids[:-1], labels[:-1]) if label != script["IGNORE"])
    assert trained == "".join(s.text for s in rendered.segments if s.trained)


def test_the_script_holds_no_prompt_format_of_its_own():
    from runner.export.script import TEMPLATE

    template = TEMPLATE.read_text(encoding="utf-8")
    assert "### Instruction" not in template and "### Response" not in template
