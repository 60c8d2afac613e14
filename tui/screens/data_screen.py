"""The Data screen: what the model will train on, token by token, before anything is launched.

The preview needs the tokenizer (transformers) and the dataset loader (datasets), which this
process never imports: a worker runs `python -m runner.data_preview FILE --json` on a snapshot of
the config being edited and shows what it prints. Trained tokens are shown bold green and
underlined, masked ones (prompt, chat headers, untrained roles) dim; `i` adds the token ids.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from runner.data_preview import visible  # light: the heavy imports are inside its functions
from runner.schema import Config

from ..worker_failures import ShowsWorkerFailures

PREVIEW_TIMEOUT_S = 600
TRAINED_STYLE = "bold green underline"
MASKED_STYLE = "dim"


def preview_command(config_file: Path, n: int) -> list[str]:
    return [sys.executable, "-m", "runner.data_preview", str(config_file), "--json", "--n", str(n)]


def run_preview(config: Config, n: int = 5) -> dict[str, Any]:
    """Run the preview subprocess on a self-contained snapshot of `config`; its JSON, or {"errors": [...]}."""
    from runner import presets

    snapshot = config.model_copy(update={"extends": ""})  # the parent is already applied
    with tempfile.TemporaryDirectory(prefix="tunedeck-data-") as tmp:
        path = Path(tmp) / "preview.toml"
        path.write_text(presets.dumps(snapshot, with_help=False), encoding="utf-8")
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # this checkout's runner, as launches use
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        proc = subprocess.run(preview_command(path, n), capture_output=True, text=True, env=env,
                              timeout=PREVIEW_TIMEOUT_S, cwd=os.getcwd())
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"errors": [f"the preview failed (exit {proc.returncode}): " + " | ".join(tail)]}
    return result


class DataScreen(ShowsWorkerFailures, Screen[None]):
    """Counts, token lengths and rendered examples of the config's training data."""

    DEFAULT_CSS = """
    #data-scroll { border: round $accent; border-title-color: $accent; padding: 0 1; }
    """

    BINDINGS = [
        Binding("escape,q", "close", "Back"),
        Binding("i", "toggle_ids", "Token ids"),
        Binding("r", "reload", "Reload"),
        Binding("plus", "more", "More examples"),
    ]

    @dataclass
    class Loaded(Message):
        result: dict[str, Any]

    def __init__(self, config: Config, title: str = "") -> None:
        super().__init__()
        self.config = config
        self.title_text = title
        self.result: dict[str, Any] | None = None
        self.show_ids = False
        self.examples = 5

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="data-scroll"):
            yield Static("[dim]loading the data and the tokenizer…[/]", id="data-summary")
            yield Static(id="data-histogram")
            yield Static(id="data-examples")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#data-scroll").border_title = f"Data: {self.title_text}" if self.title_text else "Data"
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, name="data preview")
    def load(self) -> None:
        self.post_message(self.Loaded(run_preview(self.config, self.examples)))

    @on(Worker.StateChanged)
    def _worker_state(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.query_one("#data-summary", Static).update(
                Text(f"The preview failed: {type(error).__name__}: {error}", style="red"))

    def on_data_screen_loaded(self, message: Loaded) -> None:
        self.result = message.result
        self.show()

    # --- drawing ------------------------------------------------------------------------------------
    def show(self) -> None:
        r = self.result or {}
        summary = self.query_one("#data-summary", Static)
        if "totals" not in r:
            text = Text("Data problems (nothing is launched until they are fixed):\n", style="bold red")
            for line in r.get("errors", []):
                text.append(line + "\n", style="red")
            summary.update(text)
            self.query_one("#data-histogram", Static).update("")
            self.query_one("#data-examples", Static).update("")
            return
        summary.update(summary_text(r))
        self.query_one("#data-histogram", Static).update(histogram_text(r))
        self.query_one("#data-examples", Static).update(examples_text(r, self.show_ids))

    def action_toggle_ids(self) -> None:
        self.show_ids = not self.show_ids
        if self.result:
            self.show()

    def action_reload(self) -> None:
        self.query_one("#data-summary", Static).update("[dim]reloading…[/]")
        self.load()

    def action_more(self) -> None:
        self.examples += 5
        self.action_reload()

    def action_close(self) -> None:
        self.dismiss(None)
        recompute = getattr(self.app.screen, "recompute", None)  # the editor's gauge may now use the data's lengths
        if callable(recompute):
            recompute()


def summary_text(r: dict[str, Any]) -> Text:
    tot, ln, zero = r["totals"], r["lengths"], r["zero_trainable"]
    text = Text()
    text.append("Rows\n", style="bold")
    text.append(f"read {tot['read']}, kept {tot['kept']}, truncated {tot['truncated']}; "
                f"train {tot['train']}, eval {tot['eval']}"
                + (f" ({tot['eval_source']})" if tot["eval_source"] else " (no eval set)")
                + (f"; packed into {tot['packed_rows']} rows" if tot.get("packed_rows") is not None else "") + "\n")
    for reason, n in tot["dropped"].items():
        text.append(f"dropped {n}: {reason.replace('_', ' ')}\n", style="yellow")
    if len(r["sources"]) > 1:
        for s in r["sources"]:
            text.append(f"  {s['label']} {s['path']}: read {s['read']}, kept {s['kept']}, used {s['used']}\n",
                        style="dim")
    share = tot["trained_tokens"] / max(tot["tokens"], 1)
    text.append(f"{tot['tokens']:,} tokens, {share:.0%} of them trained", style="")
    if r.get("template"):
        text.append(f"; chat template: {r['template']}", style="dim")
    text.append("\n")
    if zero["rows"]:
        text.append(f"{zero['rows']} rows ({zero['share']:.1%}) have zero trainable tokens: "
                    + "; ".join(zero["causes"]) + "\n", style="bold red")
    for line in r.get("errors", []):
        if "zero trainable" not in line:
            text.append(f"error: {line}\n", style="red")
    for line in r.get("warnings", []):
        text.append(f"warning: {line}\n", style="yellow")
    text.append("\nToken lengths ", style="bold")
    text.append(f"(before truncation; max_seq_length {r['max_seq_length']})\n", style="dim")
    text.append(f"min {ln['min']}  p50 {ln['p50']}  p90 {ln['p90']}  p95 {ln['p95']}  p99 {ln['p99']}  "
                f"max {ln['max']}  ({ln['over_max']} longer than max_seq_length)\n")
    return text


def histogram_text(r: dict[str, Any]) -> Text:
    bins = r["histogram"]
    peak = max((b["count"] for b in bins), default=0) or 1
    text = Text()
    for b in bins:
        label = f"> {r['max_seq_length']}" if b.get("over") else f"{b['lo']}-{b['hi']}"
        bar = "█" * round(40 * b["count"] / peak)
        text.append(f"{label:>12} ", style="dim")
        text.append(f"{bar} ", style="red" if b.get("over") and b["count"] else "cyan")
        text.append(f"{b['count']}\n")
    return text


def examples_text(r: dict[str, Any], show_ids: bool) -> Text:
    text = Text()
    text.append("\nExamples ", style="bold")
    text.append("trained", style=TRAINED_STYLE)
    text.append(" tokens count toward the loss; ", style="dim")
    text.append("masked", style=MASKED_STYLE)
    text.append(" ones do not. i: token ids, +: more examples\n", style="dim")
    for ex in r["examples"]:
        note = f"  {ex['status'].replace('_', ' ')}: {ex['cause']}" if ex["cause"] else ""
        text.append(f"— row {ex['index'] + 1} ({ex['source']}), {ex['length']} tokens{note}\n",
                    style="bold red" if ex["status"] == "no_trainable" else "bold")
        for tok in ex["tokens"]:
            shown = visible(tok["text"])
            if show_ids:
                shown = shown.rstrip("\n") + f"‹{tok['id']}›" + "\n" * (len(shown) - len(shown.rstrip("\n")))
            text.append(shown, style=TRAINED_STYLE if tok["trained"] else MASKED_STYLE)
        text.append("\n")
    return text
