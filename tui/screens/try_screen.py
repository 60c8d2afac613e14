"""Try a run's model: type a prompt, tune the generation knobs, watch the completion stream in.

The model runs in the playground subprocess (runner.playground); a worker thread reads its replies
and posts them here as typed messages, so this process never imports torch. Closing the screen ends
the subprocess. Columns: one completion, or the tuned model beside the base model (or another
checkpoint) with the same seed, or a sweep of one knob over a few values.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import DescendantFocus
from textual.markup import escape
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static
from textual.worker import Worker, WorkerState

from runner.rundir import RunDir
from runner.schema import FIELDS, FIELDS_BY_KEY, Config, get_value

from ..values import InvalidValue, format_value, with_value
from ..widgets.field_row import FieldRow
from ..widgets.help_panel import HelpPanel
from ..worker_failures import ShowsWorkerFailures

GENERATION_KEYS = [f.key for f in FIELDS if f.section == "generation" and f.kind != "list"]
# The knobs a sweep can vary, with the values it starts from (editable in the sweep box).
SWEEPS: dict[str, list[Any]] = {
    "generation.temperature": [0.2, 0.7, 1.2],
    "generation.top_p": [0.5, 0.9, 1.0],
    "generation.top_k": [1, 10, 50],
    "generation.repetition_penalty": [1.0, 1.2, 1.5],
}
# The knobs greedy decoding ignores: the schema says they apply only while sampling.
SAMPLING_KNOBS = tuple(spec.key for spec in FIELDS if spec.applies == "generation.do_sample")
POLL_S = 0.2


# --- messages from the worker --------------------------------------------------------------------------
@dataclass
class PlaygroundReady(Message):
    info: dict[str, Any]


@dataclass
class PlaygroundToken(Message):
    request_id: str
    text: str


@dataclass
class PlaygroundStarted(Message):
    request_id: str
    rendered: str


@dataclass
class PlaygroundDone(Message):
    request_id: str
    reply: dict[str, Any]


@dataclass
class PlaygroundError(Message):
    request_id: str | None
    message: str
    fatal: bool


@dataclass
class PlaygroundExited(Message):
    code: int | None
    stderr_tail: str


# --- one column of output ------------------------------------------------------------------------------
class Completion(VerticalScroll):
    """One completion as it streams: the model or setting it came from in the title, timings below."""

    def __init__(self, title: str, **kwargs: Any) -> None:
        super().__init__(classes="try-column", **kwargs)
        self.border_title = title
        self.text = ""
        self.chunks = 0  # token messages received (a streamed completion has one per token)
        self.state = "waiting"  # waiting | streaming | done | error

    def compose(self) -> ComposeResult:
        yield Static("[dim]waiting…[/]", classes="try-completion")

    def _body(self) -> Static:
        return self.query_one(".try-completion", Static)

    def add(self, text: str) -> None:
        self.state = "streaming"
        self.chunks += 1
        self.text += text
        self._body().update(_shown(self.text) or " ")

    def done(self, reply: dict[str, Any]) -> None:
        self.state = "done"
        self.text = reply.get("completion", self.text)
        if not self.text:
            body = "[dim](empty completion)[/]"
        elif not self.text.strip():  # only line breaks or spaces: say so, a blank column looks broken
            body = f"[dim](only whitespace: {self.text.count(chr(10))} line breaks, {self.text.count(' ')} spaces)[/]"
        else:
            body = _shown(self.text)
        self._body().update(body)
        first = reply.get("first_token_s")
        parts = [f"{reply.get('tokens', 0)} tok"]
        if first is not None:
            parts.append(f"1st {first:.2f}s")
        parts.append(f"{reply.get('seconds', 0):.2f}s")
        if reply.get("cancelled"):
            parts.append("stopped")
        self.border_subtitle = " · ".join(parts)

    def failed(self, message: str) -> None:
        self.state = "error"
        self.add_class("-error")
        self._body().update(f"[$error]{escape(message)}[/]")


def _shown(text: str) -> str:
    """Model output as markup: control characters escaped (its line breaks kept), markup escaped."""
    from runner.printable import escape_controls

    return escape(escape_controls(text, keep_lines=True))


@dataclass
class Column:
    title: str
    model: str
    generation: dict[str, Any] = field(default_factory=dict)


class TryScreen(ShowsWorkerFailures, Screen):
    HELP = """
## Try the model
Type a prompt and press `Enter`: the completion streams in. The prompt is rendered exactly as in
training (the instruction or chat template). `F4` picks the checkpoint, `F6` compares it with the
base model or another checkpoint (same seed), `F7` sweeps one knob over a few values, `F8` picks the next sample
prompt, `Ctrl+S` saves these generation settings as a new preset, `Esc` stops a completion or closes.
"""

    BINDINGS = [
        Binding("f5", "generate", "Generate"),
        Binding("f4", "primary", "Checkpoint"),
        Binding("f6", "compare", "Compare"),
        Binding("f7", "sweep", "Sweep"),
        Binding("f8", "next_prompt", "Next prompt"),
        Binding("ctrl+s", "save_settings", "Save settings"),
        Binding("escape", "back", "Stop/back"),
    ]

    def __init__(self, run: RunDir, checkpoint: str = "latest", *, max_memory: int | None = None,
                 env: dict[str, str] | None = None) -> None:
        """`env` is the playground's environment (default: this process's)."""
        super().__init__()
        from runner import presets

        self.run = run
        self.checkpoint = checkpoint
        self.max_memory = max_memory
        self.env = env
        loaded = presets.load(run.config)
        self.loaded = loaded
        self.config: Config | None = loaded.config
        self.client: Any = None
        self.info: dict[str, Any] | None = None
        self.fatal: str | None = None
        self.primary: str | None = None  # the checkpoint the first column uses (None: the one loaded)
        self.compare_with: str | None = None  # "base" or a checkpoint name
        self.sweep_key: str | None = None
        self.columns: dict[str, Completion] = {}
        self.prompt_index = 0
        self.focused_key: str | None = None
        self.saved_path: Any = None  # the last preset written by ctrl+s
        self._request_count = 0
        self._ending = threading.Event()
        self._client_lock = threading.Lock()

    # --- layout ------------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header(icon="")
        with Horizontal(id="try-main"):
            with Vertical(id="try-left"):
                yield Input(placeholder="a prompt, as a user would type it (Enter generates)", id="try-prompt")
                with VerticalScroll(id="try-fields") as fields:
                    fields.border_title = "generation"
                    if self.config is not None:
                        for key in GENERATION_KEYS:
                            yield FieldRow(FIELDS_BY_KEY[key], get_value(self.config, key))
                yield HelpPanel(id="try-help")
            with Vertical(id="try-right"):
                yield Static("", id="try-status")
                yield Input(id="try-sweep", placeholder="values, separated by commas")
                yield Horizontal(id="try-columns")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = f"try {self.run.name}"
        self.query_one("#try-sweep").display = False
        prompt = self.query_one("#try-prompt", Input)
        if self.config is None:
            problems = "; ".join(p.message for p in self.loaded.errors) or "cannot read it"
            self.show_fatal(f"{self.run.config}: {problems}")
            return
        prompts = self.config.generation.prompts
        if prompts:
            prompt.value = prompts[0]
        prompt.focus()
        self.show_screen_help()
        self.set_status(f"loading {escape(self.run.name)} ({escape(self.checkpoint)})…")
        self.start_playground()

    def on_unmount(self) -> None:
        self.close_playground()

    def close_playground(self) -> None:
        """End the subprocess (quit, then SIGTERM, then SIGKILL): a closed screen leaves nothing behind."""
        with self._client_lock:  # the worker cannot start a process after this
            self._ending.set()
            client, self.client = self.client, None
        if client is not None:
            client.close()

    # --- the playground (worker thread) ------------------------------------------------------------------
    @work(thread=True, exit_on_error=False, group="playground", name="playground")
    def start_playground(self) -> None:
        from runner.playground_checkpoints import CheckpointError, resolve_checkpoint
        from runner.playground_client import PlaygroundClient

        try:
            saved = resolve_checkpoint(self.run, self.checkpoint)
        except CheckpointError as exc:
            self.post_message(PlaygroundError(None, str(exc), True))
            return
        client = PlaygroundClient(self.run.path, saved.name, max_memory=self.max_memory, env=self.env)
        with self._client_lock:
            if self._ending.is_set():  # closed before the process started: start none
                return
            self.client = client.start()
        while not self._ending.is_set():
            reply = client.next_reply(timeout=POLL_S)
            if reply is None:
                continue
            kind, rid = reply.get("type"), reply.get("id")
            if kind == "ready":
                self.post_message(PlaygroundReady(reply))
            elif kind == "start":
                self.post_message(PlaygroundStarted(str(rid), reply.get("rendered", "")))
            elif kind == "token":
                self.post_message(PlaygroundToken(str(rid), reply.get("text", "")))
            elif kind == "done":
                self.post_message(PlaygroundDone(str(rid), reply))
            elif kind == "error":
                self.post_message(PlaygroundError(str(rid) if rid is not None else None, reply.get("message", ""),
                                                  bool(reply.get("fatal"))))
            elif kind == "exit":
                self.post_message(PlaygroundExited(reply.get("code"), reply.get("stderr_tail", "")))
                return

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            error = event.worker.error
            self.show_fatal(f"{event.worker.name} failed: {type(error).__name__}: {error}")

    @on(PlaygroundReady)
    def _ready(self, message: PlaygroundReady) -> None:
        self.info = message.info
        info = message.info
        kind = "adapter on " + str(info.get("base")) if info.get("adapter") else "full model"
        self.sub_title = f"{info.get('checkpoint')} ({kind})"
        self.set_status(f"ready: {escape(self.run.name)}/{escape(str(info.get('checkpoint')))} on "
                        f"{escape(str(info.get('device')))}, loaded in {info.get('load_s', 0):.1f}s. "
                        "Enter generates · F6 compare · F7 sweep")

    @on(PlaygroundStarted)
    def _started(self, message: PlaygroundStarted) -> None:
        column = self.columns.get(message.request_id)
        if column is not None:
            column.tooltip = message.rendered

    @on(PlaygroundToken)
    def _token(self, message: PlaygroundToken) -> None:
        column = self.columns.get(message.request_id)
        if column is not None:
            column.add(message.text)

    @on(PlaygroundDone)
    def _done(self, message: PlaygroundDone) -> None:
        column = self.columns.get(message.request_id)
        if column is not None:
            column.done(message.reply)

    @on(PlaygroundError)
    def _error(self, message: PlaygroundError) -> None:
        if message.fatal:
            self.show_fatal(message.message)
            return
        column = self.columns.get(message.request_id or "")
        if column is not None:
            column.failed(message.message)
        else:
            self.notify(message.message, title="Playground", severity="error")

    @on(PlaygroundExited)
    def _exited(self, message: PlaygroundExited) -> None:
        if self.fatal is None and not self._ending.is_set():
            tail = message.stderr_tail.strip().splitlines()[-1:] or ["no output"]
            self.show_fatal(f"the playground exited (code {message.code}): {tail[0]}")
        for column in self.columns.values():
            if column.state in ("waiting", "streaming"):
                column.failed("the playground ended")

    def show_fatal(self, text: str) -> None:
        self.fatal = text
        self.query_one("#try-status", Static).add_class("-error")
        self.set_status(f"[b]Cannot try this run:[/b] {escape(text)}")

    def set_status(self, markup: str) -> None:
        self.query_one("#try-status", Static).update(markup)

    # --- generation settings -----------------------------------------------------------------------------
    async def on_field_row_edited(self, event: FieldRow.Edited) -> None:
        event.stop()
        if self.config is None:
            return
        if event.error:
            event.row.show_error(event.error)
            return
        try:
            self.config = with_value(self.config, FIELDS_BY_KEY[event.key], event.value)
            event.row.show_error(None)
        except InvalidValue as exc:
            event.row.show_error(str(exc))
        self.refresh_help()

    def generation(self) -> dict[str, Any]:
        assert self.config is not None
        return self.config.generation.model_dump(exclude={"prompts"})

    @on(DescendantFocus)
    def _focus_moved(self, event: DescendantFocus) -> None:
        row = next((n for n in event.widget.ancestors_with_self if isinstance(n, FieldRow)), None)
        self.focused_key = row.spec.key if row is not None else None
        self.refresh_help()

    def show_screen_help(self) -> None:
        title, *body = self.HELP.strip().splitlines()
        text = " ".join(line.strip() for line in body).replace("`", "")
        self.query_one(HelpPanel).show_text(f"[b]{escape(title.lstrip('# '))}[/b]\n{escape(text)}")

    def refresh_help(self) -> None:
        if self.config is None:
            return
        if self.focused_key is None:
            self.show_screen_help()
            return
        spec = FIELDS_BY_KEY[self.focused_key]
        facts = []
        if spec.key in SAMPLING_KNOBS and not self.config.generation.do_sample:
            facts.append("Sampling is off: greedy decoding ignores this knob (a sweep turns sampling on).")
        self.query_one(HelpPanel).show_field(spec, get_value(self.config, spec.key), facts, [])

    # --- generating --------------------------------------------------------------------------------------
    @on(Input.Submitted, "#try-prompt")
    @on(Input.Submitted, "#try-sweep")
    async def _submitted(self) -> None:
        await self.action_generate()

    def plan(self) -> list[Column]:
        """The columns the next Enter fills: one, a comparison of two models, or a sweep."""
        loaded = self.info.get("checkpoint") if self.info else self.checkpoint
        first = self.primary or "tuned"
        tuned = f"tuned · {self.primary or loaded}"
        if self.compare_with is not None:
            base = self.compare_with == "base" and self.info
            other = f"base · {self.info.get('base')}" if base else self.compare_with
            return [Column(tuned, first), Column(other, self.compare_with)]
        if self.sweep_key is not None:
            spec = FIELDS_BY_KEY[self.sweep_key]
            columns = []
            for value in self.sweep_values():
                extra: dict[str, Any] = {spec.name: value}
                if self.sweep_key in SAMPLING_KNOBS:
                    extra["do_sample"] = True  # a sampling knob does nothing under greedy decoding
                columns.append(Column(f"{spec.name} = {format_value(spec, value)}", first, extra))
            return columns
        return [Column(tuned, first)]

    def sweep_values(self) -> list[Any]:
        from ..values import parse_text

        spec = FIELDS_BY_KEY[self.sweep_key or ""]
        values = []
        for part in self.query_one("#try-sweep", Input).value.split(","):
            if part.strip():
                try:
                    values.append(parse_text(spec, part))
                except InvalidValue:
                    pass
        return values

    async def action_generate(self) -> None:
        prompt = self.query_one("#try-prompt", Input).value
        if self.fatal is not None:
            self.notify(self.fatal, title="Cannot generate", severity="error")
            return
        if self.client is None or self.info is None:
            self.notify("The model is still loading.", severity="warning")
            return
        if not prompt.strip():
            self.notify("Type a prompt first.", severity="warning")
            return
        invalid = [row.spec.key for row in self.query(FieldRow) if row.has_class("-invalid")]
        if invalid:
            self.notify(f"Fix {', '.join(invalid)} first.", severity="error")
            return
        columns = self.plan()
        if not columns:
            self.notify("The sweep has no valid values.", severity="error")
            return
        self.client.cancel()  # a new prompt replaces whatever is still streaming
        box = self.query_one("#try-columns", Horizontal)
        await box.remove_children()
        self.columns = {}
        for column in columns:
            self._request_count += 1
            self.columns[str(self._request_count)] = Completion(column.title)
        await box.mount_all(list(self.columns.values()))  # before any token can arrive for them
        for (rid, _), column in zip(self.columns.items(), columns):
            self.client.generate(prompt, model=column.model, generation={**self.generation(), **column.generation},
                                 request_id=rid)

    def action_primary(self) -> None:
        """Cycle the checkpoint the first column (and a sweep) uses, among the run's saved models."""
        if self.info is None:
            return
        names = list(self.info.get("checkpoints", []))
        current = self.primary or self.info.get("checkpoint")
        at = names.index(current) if current in names else -1
        self.primary = names[(at + 1) % len(names)] if names else None
        if self.compare_with == self.primary:
            self.compare_with = None
        self.notify(f"first column: {self.primary}", timeout=3)

    def action_compare(self) -> None:
        """Cycle what the tuned model is compared with: the base model, each other checkpoint, nothing."""
        options: list[str | None] = [None]
        if self.info is not None:
            if self.info.get("base"):
                options.append("base")
            primary = self.primary or self.info.get("checkpoint")
            options += [c for c in self.info.get("checkpoints", []) if c != primary]
        at = options.index(self.compare_with) if self.compare_with in options else 0
        self.compare_with = options[(at + 1) % len(options)]
        self.sweep_key = None
        self.query_one("#try-sweep").display = False
        self.notify(f"compare with {self.compare_with} (same seed)" if self.compare_with else "no comparison",
                    timeout=3)

    def action_sweep(self) -> None:
        """Cycle the knob a sweep varies (temperature, top_p, top_k, repetition penalty, none)."""
        keys: list[str | None] = [None, *SWEEPS]
        at = keys.index(self.sweep_key) if self.sweep_key in keys else 0
        self.sweep_key = keys[(at + 1) % len(keys)]
        self.compare_with = None
        box = self.query_one("#try-sweep", Input)
        box.display = self.sweep_key is not None
        if self.sweep_key is not None:
            spec = FIELDS_BY_KEY[self.sweep_key]
            box.value = ", ".join(format_value(spec, v) for v in SWEEPS[self.sweep_key])
            box.border_title = f"sweep {spec.name}"
            self.notify(f"sweep {spec.name}: one column per value (edit them above)", timeout=3)
        else:
            self.notify("no sweep", timeout=3)

    def action_next_prompt(self) -> None:
        prompts = self.config.generation.prompts if self.config is not None else []
        if not prompts:
            self.notify("This run has no sample prompts (generation.prompts).", severity="warning")
            return
        self.prompt_index = (self.prompt_index + 1) % len(prompts)
        self.query_one("#try-prompt", Input).value = prompts[self.prompt_index]

    # --- keeping the settings ----------------------------------------------------------------------------
    def action_save_settings(self) -> None:
        from runner import presets
        from runner.paths import user_presets_dir

        if self.config is None or self.loaded.config is None:
            return
        status = self.run.read_status()
        base = str(status.get("preset") or self.run.name).replace("/", "-")
        folder = user_presets_dir()
        path = folder / f"{base}-try.toml"
        n = 2
        while path.exists():
            path = folder / f"{base}-try-{n}.toml"
            n += 1
        description = f"{self.loaded.config.description} (generation settings tried on {self.run.name})".strip()
        config = self.loaded.config.model_copy(update={"generation": self.config.generation,
                                                       "description": description})
        try:
            folder.mkdir(parents=True, exist_ok=True)
            presets.save(config, path, document=self.loaded.document)
        except OSError as exc:
            self.notify(f"Could not save {path}: {exc}", title="Not saved", severity="error")
            return
        self.saved_path = path
        self.notify(f"{path}\nThe next run from it samples with these settings.", title="Generation settings saved",
                    timeout=8)

    def action_back(self) -> None:
        streaming = any(c.state in ("waiting", "streaming") for c in self.columns.values())
        if streaming and self.client is not None:
            self.client.cancel()  # the one streaming ends as "stopped"; queued ones are dropped
            for column in self.columns.values():
                if column.state == "waiting":
                    column.failed("not generated (stopped)")
            return
        self.app.pop_screen()
