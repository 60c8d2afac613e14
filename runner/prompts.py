"""The one prompt renderer: how a data row (or a sample prompt) becomes text, and which text is trained.

Pure Python (jinja2, no tokenizer, no torch), so the data check, the preview, training, sample
generation, the importer and the playground all call the same functions. Tokenizing the result
is train_data's job; this module only decides the text and, per piece of text, whether it counts
toward the loss.

Stable API (other modules and tools rely on these names):

- ``render_instruction(instruction, input_text, output) -> (prompt, answer)``: the Alpaca-style
  instruction template; an empty input leaves its ``### Input:`` section out.
- ``ChatTemplate``: a Jinja chat template plus the special tokens it may use; ``.render(messages,
  add_generation_prompt=False) -> str``.
- ``CHAT_TEMPLATES``: the built-in named templates (chatml, llama3, mistral, gemma, qwen, phi3, zephyr,
  alpaca); ``resolve_chat_template(setting, tokenizer_template=None, bos_token="", eos_token="",
  base_dir=None) -> ChatTemplate`` picks the one ``data.chat_template`` names ('tokenizer' = the
  tokenizer's own, a name, or a path to a Jinja file).
- ``chat_messages(raw, data) -> list[{"role", "content"}]``: a row's messages with data.role_field /
  data.content_field / data.role_map applied and checked.
- ``render_row(row, data, template=None) -> Rendered``: one training row, as data.format says, split
  into ``Segment(text, trained, role)`` pieces; ``Rendered.text`` is the whole text and
  ``Rendered.add_eos`` says whether the tokenizer's end-of-sequence token follows it (trained).
- ``render_chat(messages, template, trained_roles=None) -> Rendered``: the chat part of render_row.
- ``generation_prompt(prompt, data, template=None) -> str``: the text a sample prompt is completed
  from; the same template as training rows. In the instruction format a prompt may carry an input
  after ``### Input:`` (``"Repeat the word three times. ### Input: lamp"``).
- ``ADD_SPECIAL_TOKENS[format]``: whether the tokenizer adds its own special tokens (BOS) when this
  text is tokenized; chat templates write theirs themselves.
- ``RowError``: a row that cannot be rendered; ``.field`` names the column or message key at fault.

Every check raises RowError with a message that names the field and says what is allowed; callers add
the file and line.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from runner.problems import did_you_mean
from runner.schema.data import KNOWN_ROLES, TOKENIZER_TEMPLATE

# --- the instruction format --------------------------------------------------------------------------
PROMPT_WITH_INPUT = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
PROMPT_NO_INPUT = "### Instruction:\n{instruction}\n\n### Response:\n"
INPUT_MARKER = re.compile(r"\s*###\s*Input:\s*", re.IGNORECASE)  # splits a sample prompt into instruction/input

ADD_SPECIAL_TOKENS = {"text": True, "instruction": True, "chat": False}


class RowError(ValueError):
    """A row that cannot be rendered as the config says; `field` is the column or key at fault."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.field = field


def render_instruction(instruction: str, input_text: str | None, output: str) -> tuple[str, str]:
    """(prompt, answer) for one instruction example; an empty input leaves its header out."""
    if input_text is not None and str(input_text).strip():
        prompt = PROMPT_WITH_INPUT.format(instruction=instruction, input=input_text)
    else:
        prompt = PROMPT_NO_INPUT.format(instruction=instruction)
    return prompt, str(output)


# --- chat templates -------------------------------------------------------------------------------------
# Written for jinja's trim_blocks/lstrip_blocks (as transformers renders them): every newline that
# belongs to the output is inside a {{ }} expression.
_SYSTEM_INTO_FIRST_USER = (  # for families without a system role: the system text opens the first user turn
    "{% set ns = namespace(system='') %}"
    "{% for m in messages %}{% if m['role'] == 'system' %}{% set ns.system = m['content'] + '\\n\\n' %}"
)
CHAT_TEMPLATES: dict[str, str] = {
    "chatml": (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    ),
    "qwen": (
        "{% if messages and messages[0]['role'] != 'system' or not messages %}"
        "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    ),
    "llama3": (
        "{{ bos_token }}{% for m in messages %}"
        "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] | trim + '<|eot_id|>' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
    ),
    "mistral": (
        "{{ bos_token }}" + _SYSTEM_INTO_FIRST_USER +
        "{% elif m['role'] == 'user' %}{{ '[INST] ' + ns.system + m['content'] + ' [/INST]' }}{% set ns.system = '' %}"
        "{% elif m['role'] == 'assistant' %}{{ m['content'] + eos_token }}"
        "{% else %}{{ raise_exception('the mistral template knows system, user and assistant roles, not ' + m['role']) }}"
        "{% endif %}{% endfor %}"
    ),
    "gemma": (
        "{{ bos_token }}" + _SYSTEM_INTO_FIRST_USER +
        "{% elif m['role'] == 'user' %}{{ '<start_of_turn>user\\n' + ns.system + m['content'] | trim + '<end_of_turn>\\n' }}"
        "{% set ns.system = '' %}"
        "{% elif m['role'] == 'assistant' %}{{ '<start_of_turn>model\\n' + m['content'] | trim + '<end_of_turn>\\n' }}"
        "{% else %}{{ raise_exception('the gemma template knows system, user and assistant roles, not ' + m['role']) }}"
        "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
    ),
    "phi3": (
        "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + '<|end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
    ),
    "zephyr": (
        "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + eos_token + '\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
    ),
    "alpaca": (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] + '\\n\\n' }}"
        "{% elif m['role'] == 'user' %}{{ '### Instruction:\\n' + m['content'] + '\\n\\n' }}"
        "{% elif m['role'] == 'assistant' %}{{ '### Response:\\n' + m['content'] + eos_token + '\\n\\n' }}"
        "{% else %}{{ raise_exception('the alpaca template knows system, user and assistant roles, not ' + m['role']) }}"
        "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}"
    ),
}
TEMPLATE_SUFFIXES = (".jinja", ".jinja2", ".j2", ".txt")


class TemplateError(ValueError):
    """data.chat_template cannot be used (unknown name, unreadable file, broken Jinja, no tokenizer template)."""


@functools.lru_cache(maxsize=32)
def _compile(source: str):
    from jinja2 import TemplateSyntaxError
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise TemplateError(str(message))

    def strftime_now(fmt):
        import datetime

        return datetime.datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = lambda x, indent=None, ensure_ascii=False, **_: __import__("json").dumps(
        x, indent=indent, ensure_ascii=ensure_ascii)
    env.globals.update(raise_exception=raise_exception, strftime_now=strftime_now)
    try:
        return env.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"the chat template is not valid Jinja: line {exc.lineno}: {exc.message}") from None


@dataclass(frozen=True)
class ChatTemplate:
    """A Jinja chat template and the special tokens it writes. `name` says where it came from."""

    source: str
    name: str = "custom"
    bos_token: str = ""
    eos_token: str = ""

    def assistant_opener(self) -> str | None:
        """What add_generation_prompt appends after a user turn (the assistant header), found once per
        template; None when it is not a plain suffix."""
        return _opener(self)

    def render(self, messages: list[Mapping[str, Any]], add_generation_prompt: bool = False) -> str:
        try:
            return _compile(self.source).render(messages=list(messages), add_generation_prompt=add_generation_prompt,
                                                bos_token=self.bos_token, eos_token=self.eos_token)
        except TemplateError:
            raise
        except Exception as exc:  # noqa: BLE001 - a template's own error (undefined key, bad filter)
            raise TemplateError(f"the chat template ({self.name}) failed: {type(exc).__name__}: {exc}") from None


@functools.lru_cache(maxsize=32)
def _opener(template: "ChatTemplate") -> str | None:
    probe = [{"role": "user", "content": "\u2063probe\u2063"}]
    try:
        plain, opened = template.render(probe), template.render(probe, True)
    except TemplateError:
        return None
    return opened[len(plain):] if opened.startswith(plain) else None


def resolve_chat_template(setting: str, tokenizer_template: str | None = None, bos_token: str = "",
                          eos_token: str = "", base_dir: Path | None = None) -> ChatTemplate:
    """The template data.chat_template names: 'tokenizer', a built-in name, or a Jinja file's path."""
    setting = (setting or TOKENIZER_TEMPLATE).strip()
    if setting == TOKENIZER_TEMPLATE:
        if not tokenizer_template:
            raise TemplateError("the tokenizer has no chat template of its own; set data.chat_template to one of "
                                f"{', '.join(CHAT_TEMPLATES)} or a Jinja file")
        return ChatTemplate(tokenizer_template, "the tokenizer's own", bos_token, eos_token)
    if setting in CHAT_TEMPLATES:
        return ChatTemplate(CHAT_TEMPLATES[setting], setting, bos_token, eos_token)
    path = template_path(setting, base_dir)
    if path is None:
        guess = did_you_mean(setting, [TOKENIZER_TEMPLATE, *CHAT_TEMPLATES])
        hint = f"did you mean '{guess}'? " if guess else ""
        raise TemplateError(f"data.chat_template: '{setting}' is neither a built-in template nor an existing file "
                            f"({hint}allowed: 'tokenizer', {', '.join(map(repr, CHAT_TEMPLATES))}, or a path to a "
                            "Jinja file)")
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"data.chat_template: cannot read {path}: {exc}") from None
    _compile(source)  # syntax errors now, not at the first row
    return ChatTemplate(source, str(path), bos_token, eos_token)


def template_path(setting: str, base_dir: Path | None = None) -> Path | None:
    """The Jinja file data.chat_template points at (relative to the preset's folder first), if it exists."""
    path = Path(setting).expanduser()
    for candidate in ([base_dir / path] if base_dir is not None and not path.is_absolute() else []) + [path]:
        if candidate.is_file():
            return candidate
    return None


def is_named_template(setting: str) -> bool:
    return setting in CHAT_TEMPLATES or setting == TOKENIZER_TEMPLATE


# --- rows -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Segment:
    text: str
    trained: bool  # counts toward the loss
    role: str  # "text", "prompt", "answer", or a chat role ("assistant", "user", ...; "header", "tail")


@dataclass(frozen=True)
class Rendered:
    segments: tuple[Segment, ...]
    add_eos: bool = False  # the tokenizer's end-of-sequence token follows the text (and is trained)
    add_special_tokens: bool = True  # the tokenizer adds its own BOS (not for chat: the template does)

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments)

    @property
    def trained_text(self) -> str:
        return "".join(s.text for s in self.segments if s.trained)


def _string(row: Mapping[str, Any], column: str, *, optional: bool = False) -> str | None:
    if column not in row:
        if optional:
            return None
        hint = did_you_mean(column, [str(k) for k in row])
        raise RowError(f"no field '{column}' (the row has {', '.join(map(repr, row)) or 'no fields'})"
                       + (f"; did you mean '{hint}'?" if hint else ""), column)
    value = row[column]
    if value is None:
        if optional:
            return None
        raise RowError(f"field '{column}' is null; it must be a string", column)
    if not isinstance(value, str):
        raise RowError(f"field '{column}' is {describe_type(value)}, not a string", column)
    return value


def describe_type(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, dict):
        return "an object (a dict)"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


def role_aliases(role_map: Iterable[str]) -> dict[str, str]:
    """data.role_map's 'yours=template' lines as a dict (malformed lines are the validator's to report)."""
    out = {}
    for entry in role_map:
        name, sep, role = entry.partition("=")
        if sep and name.strip():
            out[name.strip()] = role.strip()
    return out


def chat_messages(raw: Any, data) -> list[dict[str, str]]:
    """A row's messages as [{role, content}] in the template's role names; RowError says what is wrong."""
    column = data.messages_field
    if raw is None:
        raise RowError(f"field '{column}' is null; it must be a list of messages", column)
    if not isinstance(raw, list):
        raise RowError(f"field '{column}' is {describe_type(raw)}, not a list of messages", column)
    aliases = role_aliases(data.role_map)
    out = []
    for i, message in enumerate(raw):
        where = f"message {i + 1} of '{column}'"
        if not isinstance(message, dict):
            raise RowError(f"{where} is {describe_type(message)}, not an object with "
                           f"'{data.role_field}' and '{data.content_field}'", column)
        for key in (data.role_field, data.content_field):
            if message.get(key) is None:
                state = "is null" if key in message else "is missing"
                others = [k for k in message if k not in (data.role_field, data.content_field)]
                hint = did_you_mean(key, others) or (others[0] if len(others) == 1 else None)
                which = "data.role_field" if key == data.role_field else "data.content_field"
                fix = f"; if '{hint}' holds it, set {which} = '{hint}'" if hint else ""
                raise RowError(f"{where}: '{key}' {state} (the message has {', '.join(map(repr, message)) or 'no keys'})"
                               + fix, f"{column}.{key}")
        role, content = message[data.role_field], message[data.content_field]
        if not isinstance(role, str):
            raise RowError(f"{where}: '{data.role_field}' is {describe_type(role)}, not a string", column)
        if not isinstance(content, str):
            raise RowError(f"{where}: '{data.content_field}' is {describe_type(content)}, not a string", column)
        mapped = aliases.get(role, role)
        if mapped not in KNOWN_ROLES:
            guess = did_you_mean(role, [*KNOWN_ROLES, *aliases])
            hint = f"did you mean '{guess}'? " if guess else ""
            shown = repr(role)[1:-1]  # data, not markup: control characters escaped
            raise RowError(f"{where} has role '{shown}', which the chat template does not know ({hint}known: "
                           f"{', '.join(KNOWN_ROLES)}{', ' + ', '.join(aliases) if aliases else ''}); map it with "
                           f"data.role_map, e.g. \"{shown}=assistant\"", f"{column}.{data.role_field}")
        out.append({"role": mapped, "content": content})
    if not out:
        raise RowError(f"field '{column}' is an empty list of messages", column)
    return out


def check_row(row: Mapping[str, Any], data) -> None:
    """Raise RowError if render_row would refuse this row for a reason a template does not decide."""
    if data.format == "text":
        _string(row, data.text_field)
    elif data.format == "instruction":
        _string(row, data.instruction_field)
        _string(row, data.input_field, optional=True)
        _string(row, data.output_field)
    else:
        if data.messages_field not in row:
            _string(row, data.messages_field)  # the missing-field message
        chat_messages(row[data.messages_field], data)


def render_row(row: Mapping[str, Any], data, template: ChatTemplate | None = None) -> Rendered:
    """One row as data.format says, split into trained and masked pieces."""
    masked = data.completion_only_loss
    if data.format == "text":
        return Rendered((Segment(_string(row, data.text_field), True, "text"),), add_eos=True)
    if data.format == "instruction":
        prompt, answer = render_instruction(_string(row, data.instruction_field),
                                            _string(row, data.input_field, optional=True),
                                            _string(row, data.output_field))
        return Rendered((Segment(prompt, not masked, "prompt"), Segment(answer, True, "answer")), add_eos=True)
    if template is None:
        raise TemplateError("the chat format needs a chat template")
    if data.messages_field not in row:
        _string(row, data.messages_field)
    messages = chat_messages(row[data.messages_field], data)
    return render_chat(messages, template, set(data.roles_to_train) if masked else None)


def render_chat(messages: list[dict[str, str]], template: ChatTemplate, trained_roles: set[str] | None = None,
                add_generation_prompt: bool = False) -> Rendered:
    """Messages through the template, turn by turn. trained_roles None: every token is trained.

    A turn is found as what rendering one more message adds; a trained assistant turn's header is
    what the generation prompt adds, so it stays masked and only the reply (with its end-of-turn
    marker) is trained.
    """
    if trained_roles is None:
        return Rendered((Segment(template.render(messages, add_generation_prompt), True, "chat"),),
                        add_special_tokens=False)
    ups = [template.render(messages[: k + 1]) for k in range(len(messages))]
    full = template.render(messages, True) if add_generation_prompt else ups[-1]
    segments: list[Segment] = []
    done = ""
    opener = template.assistant_opener()
    for k, message in enumerate(messages):
        upto = ups[k]
        if not upto.startswith(done) or not full.startswith(upto):
            return _locate_replies(full, messages, trained_roles)  # a template that rewrites earlier turns
        role, train = message["role"], message["role"] in trained_roles
        header = done
        if train and role == "assistant":
            opened = done + opener if opener is not None else template.render(messages[:k], True)
            if not upto.startswith(opened) and opener is not None:  # position-dependent: ask the template
                opened = template.render(messages[:k], True)
            if opened.startswith(done) and upto.startswith(opened):
                header = opened
        if header != done:
            segments.append(Segment(header[len(done):], False, "header"))
        segments.append(Segment(upto[len(header):], train, role))
        done = upto
    if len(full) > len(done):
        segments.append(Segment(full[len(done):], False, "tail"))
    return Rendered(tuple(s for s in segments if s.text), add_special_tokens=False)


def _locate_replies(full: str, messages: list[dict[str, str]], trained_roles: set[str]) -> Rendered:
    """Fallback for templates without the prefix property: train each trained turn's content where it appears."""
    segments, at = [], 0
    for message in messages:
        found = full.find(message["content"], at) if message["content"] else -1
        if found < 0:
            continue
        end = found + len(message["content"])
        train = message["role"] in trained_roles
        segments += [Segment(full[at:found], False, "header"), Segment(full[found:end], train, message["role"])]
        at = end
    segments.append(Segment(full[at:], False, "tail"))
    return Rendered(tuple(s for s in segments if s.text), add_special_tokens=False)


# --- sample prompts ------------------------------------------------------------------------------------
def split_instruction_prompt(prompt: str) -> tuple[str, str | None]:
    """'INSTRUCTION ### Input: INPUT' -> (instruction, input); no marker -> (prompt, None)."""
    parts = INPUT_MARKER.split(prompt, maxsplit=1)
    return (parts[0].strip(), parts[1].strip()) if len(parts) == 2 else (prompt.strip(), None)


def generation_prompt(prompt: str, data, template: ChatTemplate | None = None) -> str:
    """The text a sample prompt is completed from, rendered exactly as training rows' prompts are."""
    if data.format == "instruction":
        instruction, input_text = split_instruction_prompt(prompt)
        return render_instruction(instruction, input_text, "")[0]
    if data.format == "chat":
        if template is None:
            raise TemplateError("the chat format needs a chat template")
        return template.render([{"role": "user", "content": prompt}], add_generation_prompt=True)
    return prompt
