"""[data]: where the examples come from, how they are rendered into tokens, and the eval split."""

from __future__ import annotations

from typing import Literal

from ._field import Section, setting

DEMO_DATA = "tunedeck:demo"  # the dataset bundled with the package; see runner.demo


class DataSection(Section):
    path: str = setting(
        DEMO_DATA,
        label="Dataset",
        what="The training data: a .jsonl/.json/.csv/.parquet file, a directory of such files, a Hugging "
        "Face Hub dataset id, or 'tunedeck:demo' for the small bundled dataset.",
        up="More (and more varied) data improves generalisation and lets you train longer without "
        "overfitting.",
        down="A small dataset trains quickly but overfits after a few epochs; lower the epochs and "
        "raise weight decay or dropout.",
        typical="a few thousand to a few hundred thousand examples for fine-tuning",
    )
    format: Literal["text", "instruction", "chat"] = setting(
        "text",
        label="Format",
        what="How each example is turned into text: 'text' uses one text column as is; 'instruction' "
        "renders instruction/input/output columns with a fixed prompt template; 'chat' renders a "
        "list of {role, content} messages with the tokenizer's chat template.",
        up="Use 'instruction' or 'chat' to teach a model to answer prompts.",
        down="'text' is for continued pre-training on raw documents.",
        typical="chat for assistant models, instruction for Alpaca-style data, text for raw corpora",
    )
    split: str = setting(
        "train",
        label="Split",
        what="Which split of a Hub dataset to train on (ignored for local files).",
        up="",
        down="",
        typical="train",
    )
    text_field: str = setting(
        "text",
        label="Text column",
        what="The column holding the raw text for the 'text' format.",
        up="",
        down="",
        typical="text",
    )
    instruction_field: str = setting(
        "instruction",
        label="Instruction column",
        what="The column holding the task description for the 'instruction' format.",
        up="",
        down="",
        typical="instruction",
    )
    input_field: str = setting(
        "input",
        label="Input column",
        what="The optional column with extra context for the 'instruction' format; empty values are "
        "left out of the prompt.",
        up="",
        down="",
        typical="input",
    )
    output_field: str = setting(
        "output",
        label="Output column",
        what="The column holding the expected answer for the 'instruction' format.",
        up="",
        down="",
        typical="output",
    )
    messages_field: str = setting(
        "messages",
        label="Messages column",
        what="The column holding the list of chat messages for the 'chat' format.",
        up="",
        down="",
        typical="messages",
    )
    max_seq_length: int = setting(
        512,
        label="Max sequence length",
        ge=8,
        le=1_048_576,
        unit="tokens",
        what="The longest example, in tokens, the model sees; longer ones are cut (or split when "
        "packing).",
        up="Longer sequences keep more context per example but activation memory grows at least "
        "linearly with it (quadratically with eager attention) and steps get slower.",
        down="Shorter sequences save memory and time but cut off long examples, which can drop the "
        "answers the model should learn.",
        typical="512-2048 for fine-tuning, 1024 or 2048 for pre-training",
        advice="Look at your token length distribution and cover about the 95th percentile.",
    )
    padding: Literal["longest", "max_length"] = setting(
        "longest",
        label="Padding",
        what="How examples in a batch are brought to the same length: 'longest' pads to the longest "
        "example in that batch, 'max_length' pads everything to max_seq_length.",
        up="'max_length' gives every step the same shape (predictable memory, easier to spot OOM "
        "early) but wastes compute on padding.",
        down="'longest' (dynamic padding) wastes the least compute and memory.",
        typical="longest",
    )
    truncation: bool = setting(
        True,
        label="Truncate",
        what="Cut examples longer than max_seq_length.",
        up="On: overlong examples are shortened, so memory stays bounded.",
        down="Off: overlong examples are dropped instead of cut, so none is half-seen.",
        typical="true",
    )
    packing: bool = setting(
        False,
        label="Packing",
        what="Place several short examples in one sequence (without attention leaking between them) "
        "so no compute is spent on padding.",
        up="On: far more real tokens per step when examples are short; the number of steps per "
        "epoch drops accordingly.",
        down="Off: one example per row, simplest to reason about.",
        typical="true for many short examples, false for long documents",
    )
    completion_only_loss: bool = setting(
        True,
        label="Loss on answers only",
        what="For instruction and chat data, compute the loss only on the answer (assistant) tokens, "
        "not on the prompt.",
        up="On: the model learns to answer rather than to reproduce prompts; usually better for "
        "instruction tuning.",
        down="Off: the loss covers every token, which adds signal when prompts are also worth "
        "learning.",
        typical="true",
    )
    eval_path: str = setting(
        "",
        label="Eval dataset",
        what="A separate evaluation dataset (same kinds of source as 'path'). Empty: use eval_split or "
        "no evaluation.",
        up="A held-out set is the only honest signal of overfitting.",
        down="",
        typical="a file of a few hundred held-out examples",
    )
    eval_split: float = setting(
        0.0,
        label="Eval fraction",
        ge=0.0,
        lt=1.0,
        what="Fraction of the training data held out for evaluation when no eval_path is given.",
        up="A larger fraction gives a steadier eval loss but leaves less data to train on.",
        down="A smaller fraction keeps more data for training; 0 disables the split.",
        typical="0.01-0.1; 0.05 is common",
    )
