"""`tunedeck try RUN`: complete prompts with a run's model, streamed as it generates.

The model runs in the playground subprocess (runner.playground); this command only talks to it,
so it starts fast and never imports torch. Without --prompt it reads one prompt per line.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from runner.exits import FAILED as EXIT_FAILED
from runner.exits import OK as EXIT_OK
from runner.exits import USAGE as EXIT_USAGE
from runner.printable import escape_controls

READY_TIMEOUT_S = 900.0  # a large model from a slow disk; the playground reports failures itself


def register(sub: argparse._SubParsersAction) -> None:
    from runner.commands.estimate_cmds import parse_size

    p = sub.add_parser("try", help="complete prompts with a run's model (final, latest or a checkpoint), streamed")
    p.add_argument("run", metavar="RUN", nargs="?", default="latest",
                   help="a run directory, name, unique prefix or 'latest' (as for `tunedeck logs`)")
    p.add_argument("--checkpoint", default="latest", metavar="NAME",
                   help="final, latest (final/ if saved, else the newest checkpoint), checkpoint-N or N")
    p.add_argument("--prompt", metavar="TEXT", help="complete TEXT and exit (default: read prompts, one per line)")
    p.add_argument("--model", default="tuned", metavar="WHICH",
                   help="tuned (the checkpoint above), base (the model before training) or another checkpoint")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="generation.KEY=VALUE",
                   help="a generation setting for this session, e.g. --set generation.temperature=0.2 (repeatable)")
    p.add_argument("--show-prompt", action="store_true", help="print the prompt as the model sees it (rendered)")
    p.add_argument("--max-memory", type=parse_size, metavar="SIZE",
                   help="refuse to load a model larger than SIZE (default: the free memory of the device)")
    p.add_argument("--runs-dir", metavar="DIR")
    p.set_defaults(func=cmd_try)


def printable(text: str) -> str:
    """Model output with control characters shown as escapes (a terminal never receives them raw);
    its line breaks and tabs are the model's and stay."""
    return escape_controls(text, keep_lines=True)


def generation_settings(run, overrides: list[str]) -> tuple[dict[str, Any] | None, str]:
    """The run's [generation] with --set applied and validated, or None and the problems."""
    from runner import presets

    others = [o for o in overrides if not o.strip().startswith("generation.")]
    if others:
        return None, (f"--set here takes [generation] fields only (e.g. generation.temperature=0.2); "
                      f"not {', '.join(others)}")
    loaded = presets.load(run.config, overrides)
    if loaded.config is None or loaded.errors:
        return None, "\n".join(p.format() for p in loaded.errors) or f"cannot read {run.config}"
    return loaded.config.generation.model_dump(), ""


def cmd_try(args: argparse.Namespace) -> int:
    from runner.commands.run_cmds import _resolve  # RUN means what it means for `tunedeck logs`
    from runner.playground_checkpoints import CheckpointError, resolve_checkpoint
    from runner.playground_client import PlaygroundClient

    run = _resolve(args)
    if run is None:
        return EXIT_USAGE
    generation, problems = generation_settings(run, args.overrides)
    if generation is None:
        print(problems if problems.startswith(("--set", str(run.config))) else f"error: {problems}", file=sys.stderr)
        return EXIT_USAGE
    try:
        saved = resolve_checkpoint(run, args.checkpoint)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.prompt is not None and not args.prompt.strip():
        print("error: --prompt is empty", file=sys.stderr)
        return EXIT_USAGE
    print(f"loading {run.name} ({saved.name})...", file=sys.stderr, flush=True)
    client = PlaygroundClient(run.path, saved.name, max_memory=args.max_memory).start()
    try:
        ready = _wait_ready(client)
        if ready is None:
            return EXIT_FAILED
        print(f"ready: {run.name}/{ready['checkpoint']} on {ready['device']} (loaded in {ready['load_s']:.1f}s)",
              file=sys.stderr, flush=True)
        if args.prompt is not None:
            return _complete(client, args.prompt, args, generation)
        return _interactive(client, args, generation)
    finally:
        client.close()


def _wait_ready(client) -> dict | None:
    while True:
        reply = client.next_reply(timeout=READY_TIMEOUT_S)
        if reply is None:
            print(f"error: the playground did not load the model within {READY_TIMEOUT_S:.0f}s", file=sys.stderr)
            return None
        if reply["type"] == "ready":
            return reply
        if reply["type"] == "error":
            print(f"error: {printable(reply.get('message', ''))}", file=sys.stderr)
            return None
        if reply["type"] == "exit":
            print(f"error: the playground exited (code {reply['code']}) before loading the model:\n"
                  f"{printable(reply.get('stderr_tail') or '(no output)')}", file=sys.stderr)
            return None


def _complete(client, prompt: str, args: argparse.Namespace, generation: dict) -> int:
    """Send one prompt and print its completion as it streams; Ctrl-C stops this completion only."""
    request_id = client.generate(prompt, model=args.model, generation=generation)
    try:
        while True:
            reply = client.next_reply(timeout=None)
            kind = reply.get("type")
            if kind == "exit":
                print(f"\nerror: the playground exited (code {reply['code']}):\n"
                      f"{printable(reply.get('stderr_tail') or '')}", file=sys.stderr)
                return EXIT_FAILED
            if reply.get("id") != request_id and kind != "error":
                continue
            if kind == "start" and args.show_prompt:
                print(f"--- prompt as the model sees it ---\n{printable(reply['rendered'])}\n---", file=sys.stderr)
            elif kind == "token":
                sys.stdout.write(printable(reply["text"]))
                sys.stdout.flush()
            elif kind == "done":
                print()
                if reply.get("cancelled"):
                    print("(stopped)", file=sys.stderr)
                return EXIT_OK
            elif kind == "error":
                print(f"error: {printable(reply.get('message', ''))}", file=sys.stderr)
                return EXIT_FAILED
    except KeyboardInterrupt:
        client.cancel()
        print("\n(stopped)", file=sys.stderr)
        return EXIT_OK


def _interactive(client, args: argparse.Namespace, generation: dict) -> int:
    interactive = sys.stdin.isatty()
    if interactive:
        print("type a prompt and press Enter; Ctrl-C stops a completion, Ctrl-D quits", file=sys.stderr)
    status = EXIT_OK
    while True:
        try:
            line = input("> " if interactive else "")
        except (EOFError, KeyboardInterrupt):
            if interactive:
                print(file=sys.stderr)
            return status
        if line.strip():
            status = max(status, _complete(client, line, args, generation))
