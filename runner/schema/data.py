"""[data]: where the examples come from, how they are rendered into tokens, and the eval split."""

from __future__ import annotations

from typing import Literal

from runner.demo_spec import DEMO_DATA

from ._field import Section, setting

TOKENIZER_TEMPLATE = "tokenizer"  # data.chat_template: use the tokenizer's own chat template
# Roles a chat row may use after data.role_map is applied (the ones every chat template knows).
KNOWN_ROLES = ("system", "user", "assistant", "tool")


class DatasetSource(Section):
    """One entry of `[[data.datasets]]`: a dataset in a mixture. Empty values take [data]'s own."""

    path: str = setting(
        "",
        what="The dataset: a local file or directory, a Hub dataset id, or 'tunedeck:demo'.",
        up="", down="", typical="data/support.jsonl",
    )
    format: Literal["", "text", "instruction", "chat"] = setting(
        "", what="How this dataset's rows are rendered; empty: data.format.", up="", down="", typical="chat",
    )
    split: str = setting("", what="Hub split; empty: data.split.", up="", down="", typical="train")
    text_field: str = setting("", what="Text column; empty: data.text_field.", up="", down="", typical="text")
    instruction_field: str = setting("", what="Instruction column; empty: data.instruction_field.", up="", down="",
                                     typical="instruction")
    input_field: str = setting("", what="Input column; empty: data.input_field.", up="", down="", typical="input")
    output_field: str = setting("", what="Output column; empty: data.output_field.", up="", down="", typical="output")
    messages_field: str = setting("", what="Messages column; empty: data.messages_field.", up="", down="",
                                  typical="conversations")
    role_field: str = setting("", what="Role key in each message; empty: data.role_field.", up="", down="",
                              typical="from")
    content_field: str = setting("", what="Content key in each message; empty: data.content_field.", up="", down="",
                                 typical="value")
    max_samples: int = setting(0, ge=0, what="Read at most this many rows of this dataset; 0: data.max_samples.",
                               up="", down="", typical="0")
    weight: float = setting(1.0, gt=0.0, le=100.0,
                            what="How many times this dataset's rows are used: 2 repeats each row twice, 0.5 "
                            "keeps a random half.", up="", down="", typical="1.0")


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
    datasets: list[DatasetSource] = setting(
        None,
        default_factory=list,
        label="Dataset mixture",
        what="Several datasets trained together, each a `[[data.datasets]]` table with its own path and, where "
        "it differs from the fields below, format, column names, max_samples and weight. When any is listed "
        "they replace data.path; the other [data] settings apply to all of them.",
        up="More sources mix more skills; a weight above 1 repeats a small but important dataset.",
        down="An empty list trains on data.path alone.",
        typical='[[data.datasets]] path = "chat.jsonl", format = "chat"; then path = "docs.jsonl", format = "text", '
        "weight = 0.5",
        advice="Check the resulting mixture with `tunedeck data PRESET`: it prints the rows each source gave.",
    )
    max_samples: int = setting(
        0,
        label="Max samples",
        ge=0,
        le=1_000_000_000,
        unit="rows",
        what="Read at most this many rows from each dataset (before the eval split); 0 reads them all.",
        up="More rows: more to learn from, longer epochs.",
        down="Fewer rows: a quick smoke test or a cheap first experiment on a large dataset.",
        typical="0 (all); 100-1000 for a smoke test",
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
        applies="data.format=text|data.datasets",
        label="Text column",
        what="The column holding the raw text for the 'text' format.",
        up="",
        down="",
        typical="text",
    )
    instruction_field: str = setting(
        "instruction",
        applies="data.format=instruction|data.datasets",
        label="Instruction column",
        what="The column holding the task description for the 'instruction' format.",
        up="",
        down="",
        typical="instruction",
    )
    input_field: str = setting(
        "input",
        applies="data.format=instruction|data.datasets",
        label="Input column",
        what="The optional column with extra context for the 'instruction' format; empty values are "
        "left out of the prompt.",
        up="",
        down="",
        typical="input",
    )
    output_field: str = setting(
        "output",
        applies="data.format=instruction|data.datasets",
        label="Output column",
        what="The column holding the expected answer for the 'instruction' format.",
        up="",
        down="",
        typical="output",
    )
    messages_field: str = setting(
        "messages",
        applies="data.format=chat|data.datasets",
        label="Messages column",
        what="The column holding the list of chat messages for the 'chat' format.",
        up="",
        down="",
        typical="messages",
    )
    chat_template: str = setting(
        TOKENIZER_TEMPLATE,
        label="Chat template",
        what="How chat messages become text: 'tokenizer' uses the template that ships with the model's "
        "tokenizer; a name picks a built-in one (chatml, llama3, mistral, gemma, qwen, phi3, zephyr, alpaca); "
        "anything else is a path to a Jinja template file. Sample prompts are rendered the same way.",
        up="A named template gives a base model (which has none) a chat format, or makes a model follow the "
        "format you will serve it with.",
        down="'tokenizer' keeps the format the model was trained on, which is what an instruct model expects.",
        typical="tokenizer for instruct models; chatml or the family's own (llama3, gemma, ...) for base models",
        advice="Use the template you will deploy with: a model trained on one template answers poorly in another.",
    )
    role_field: str = setting(
        "role",
        applies="data.format=chat|data.datasets",
        label="Role key",
        what="The key naming the speaker in each chat message ('from' in ShareGPT-style rows).",
        up="",
        down="",
        typical="role (OpenAI style) or from (ShareGPT)",
    )
    content_field: str = setting(
        "content",
        applies="data.format=chat|data.datasets",
        label="Content key",
        what="The key holding the text of each chat message ('value' in ShareGPT-style rows).",
        up="",
        down="",
        typical="content (OpenAI style) or value (ShareGPT)",
    )
    role_map: list[str] = setting(
        None,
        default_factory=lambda: ["human=user", "gpt=assistant"],
        label="Role names",
        what="How the roles written in your data map to the template's roles (system, user, assistant, tool), "
        "one 'yours=template' pair per line. Roles already named like the template's need no entry.",
        up="Add a pair for every role name your data uses, e.g. 'bot=assistant' or 'observation=tool'.",
        down="With no pairs, only system/user/assistant/tool are accepted; any other role is reported.",
        typical="human=user and gpt=assistant (ShareGPT)",
    )
    roles_to_train: list[str] = setting(
        None,
        default_factory=lambda: ["assistant"],
        label="Roles trained",
        applies="data.completion_only_loss",
        what="With 'Loss on answers only', which roles' turns count toward the loss (the turn's text and its "
        "end-of-turn marker; the role header never does). Every other turn is context only.",
        up="Adding 'user' (or 'system') also teaches the model to write prompts, which is rarely wanted.",
        down="Only 'assistant' trains the replies alone, the usual choice for chat fine-tuning.",
        typical="assistant",
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
        what="For instruction and chat data, compute the loss only on the answer tokens (for chat: the turns "
        "of data.roles_to_train), not on the prompt. Axolotl's train_on_inputs is the opposite of this.",
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
