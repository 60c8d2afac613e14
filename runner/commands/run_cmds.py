"""Run commands: run, runs, logs, stop, resume. Light: the training itself is a detached process."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from runner.problems import Problem

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STOPPED = 0, 1, 2, 130


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="train: launch a preset or file with accelerate (detached from this terminal)")
    p.add_argument("source", metavar="PRESET_OR_FILE")
    _add_set(p)
    p.add_argument("--detach", "-d", action="store_true", help="return at once and print the run directory")
    p.add_argument("--runs-dir", metavar="DIR", help="where run directories go (default: $TUNEDECK_RUNS_DIR, else training.output_dir)")
    p.add_argument("--run-dir", metavar="DIR", help="use exactly this (new) run directory")
    from runner.commands.slurm_cmds import add_run_options

    add_run_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("runs", help="list runs with state, progress, last loss and duration")
    p.add_argument("--runs-dir", metavar="DIR")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("logs", help="print a run's output.log (RUN: directory, name, prefix or 'latest')")
    p.add_argument("run", metavar="RUN", nargs="?", default="latest")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the run ends")
    p.add_argument("-n", "--lines", type=int, default=0, help="only the last N lines (default: all)")
    p.add_argument("--events", action="store_true", help="print events.jsonl instead")
    p.add_argument("--runs-dir", metavar="DIR")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("stop", help="stop a run gracefully (checkpoint, then exit); SIGKILL after --grace seconds")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--grace", type=float, default=60.0, metavar="SECONDS")
    p.add_argument("--runs-dir", metavar="DIR")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("resume", help="continue a run from its latest checkpoint in the same run directory")
    p.add_argument("run", metavar="RUN")
    _add_set(p)
    p.add_argument("--force", action="store_true", help="resume even if the config changed since the checkpoint")
    p.add_argument("--detach", "-d", action="store_true")
    p.add_argument("--runs-dir", metavar="DIR")
    p.set_defaults(func=cmd_resume)


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a value, e.g. --set training.learning_rate=1e-4 (repeatable)")


def _print_problems(problems: list[Problem]) -> None:
    for problem in problems:
        print(problem.format(), file=sys.stderr)


def _resolve(args: argparse.Namespace):
    from runner.registry import RunNotFound, resolve

    try:
        return resolve(args.run, args.runs_dir)
    except RunNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


# --- run --------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from runner import launch, presets
    from runner.problems import ConfigError
    from runner.target import target_cuda
    from runner.validate import machine_context

    if getattr(args, "slurm", False):
        from runner.commands.slurm_cmds import submit_run

        return submit_run(args)
    machine = machine_context()
    loaded = presets.load(args.source, args.overrides, context=machine)
    _print_problems(loaded.problems)
    if loaded.config is None or loaded.errors:
        print(f"error: not launching {args.source} here: fix the error(s) above", file=sys.stderr)
        return EXIT_USAGE
    cuda = target_cuda(loaded.config, machine.cuda_available)
    try:
        launch.require_address(loaded.config, "launching here")
    except ConfigError as exc:
        _print_problems(exc.problems)
        return EXIT_USAGE
    try:
        from runner.registry import RUNS_DIR_ENV

        runs_dir = args.runs_dir or os.environ.get(RUNS_DIR_ENV) or None  # else training.output_dir
        run = launch.prepare(loaded.config, preset_name=loaded.name, runs_dir=runs_dir,
                             run_dir=args.run_dir, cuda=cuda)
    except FileExistsError:
        print(f"error: --run-dir {args.run_dir} already exists; choose a new directory", file=sys.stderr)
        return EXIT_USAGE
    proc = launch.start(run)
    print(f"run directory: {run.path}")
    if args.detach:
        print(f"follow it with: tunedeck logs {run.name} -f   (stop: tunedeck stop {run.name})")
        return EXIT_OK
    return watch(run, proc)


def cmd_resume(args: argparse.Namespace) -> int:
    from runner import launch, presets
    from runner.registry import effective_state

    run = _resolve(args)
    if run is None:
        return EXIT_USAGE
    state = effective_state(run.read_status())
    if state in ("starting", "running", "stopping"):
        print(f"error: {run.name} is still {state}; stop it first (tunedeck stop {run.name})", file=sys.stderr)
        return EXIT_USAGE
    from runner.commands import slurm_cmds

    slurm_run = slurm_cmds.is_slurm_run(run)
    checkpoint = run.latest_checkpoint()
    if checkpoint is None:
        print(f"error: {run.name} has no checkpoint to resume from (in {run.checkpoints})", file=sys.stderr)
        return EXIT_USAGE
    loaded = presets.load(run.config, args.overrides)
    _print_problems(loaded.problems)
    if loaded.config is None or loaded.errors:
        return EXIT_USAGE
    saved = _checkpoint_digest(checkpoint)
    digest = presets.config_digest(loaded.config)
    if saved is not None and saved != digest and not args.force:
        print(f"error: the config of {run.name} changed since {checkpoint.name} was saved "
              f"(digest {saved} -> {digest}); resuming would mix two setups. Start a new run, or pass "
              f"--force to resume anyway.", file=sys.stderr)
        return EXIT_USAGE
    if args.overrides:
        presets.save(loaded.config, run.config)
    print(f"resuming {run.name} from {checkpoint.name}")
    if slurm_run:
        return slurm_cmds.resume_run(run)
    from runner.events import EventTail

    tail = EventTail(run.events, from_end=True)  # this launch's events only
    proc = launch.start(run, resume=True)
    print(f"run directory: {run.path}")
    if args.detach:
        return EXIT_OK
    return watch(run, proc, tail=tail)


def _checkpoint_digest(checkpoint: Path) -> str | None:
    try:
        return json.loads((checkpoint / "tunedeck.json").read_text())["config_digest"]
    except (OSError, ValueError, KeyError):
        return None


# --- watching a run in the foreground ----------------------------------------------------------
def watch(run, proc=None, out=sys.stdout, tail=None) -> int:
    """Print a progress line per log event until the run ends; Ctrl-C stops it gracefully."""
    from runner.events import TERMINAL_TYPES, EventTail
    from runner.registry import effective_state
    from runner.stop import stop

    tail = tail or EventTail(run.events)
    interactive = out.isatty()
    interrupted = 0
    terminal: dict[str, Any] | None = None
    print("Ctrl-C stops the run gracefully (checkpoint first); closing the terminal does not stop it.", file=out)
    settled = False
    while terminal is None and not settled:
        try:
            # Read the state before the events: a run that ended has written its last event by then.
            settled = effective_state(run.read_status()) in ("lost", "failed", "finished", "stopped")
            for event in tail.poll():
                line = describe(event)
                if line:
                    end = "" if event["type"] == "log" and interactive else "\n"
                    print(("\r\x1b[K" if interactive else "") + line, end=end, file=out, flush=True)
                if event["type"] in TERMINAL_TYPES:
                    terminal = event
            if proc is not None:
                proc.poll()  # reap the supervisor if it was our child
            if terminal is None and not settled:
                time.sleep(0.5)
        except KeyboardInterrupt:
            interrupted += 1
            if interrupted == 1:
                print("\nstopping (saving a checkpoint first; Ctrl-C again to kill at once)...", file=out, flush=True)
                _stop_async(run)
            else:
                print("\nkilling the run...", file=out, flush=True)
                stop(run, grace=0)
    if proc is not None and terminal is not None:
        try:
            proc.wait(timeout=120)  # the supervisor records the exit code once every process is gone
        except subprocess.TimeoutExpired:
            pass
    if interactive:
        print(file=out)
    state = run.read_status().get("state")
    print(f"{run.name}: {state}. Run directory: {run.path}", file=out)
    if terminal is not None and terminal["type"] == "run_failed":
        return EXIT_FAILED
    if state == "stopped":
        return EXIT_STOPPED
    return EXIT_OK if state == "finished" else EXIT_FAILED


def _stop_async(run) -> None:
    """Signal the group and return: the loop above keeps printing while the trainer saves."""
    pgid = run.read_status().get("pgid")
    if pgid:
        run.update_status(state="stopping", stop_requested=time.time())
        try:
            os.killpg(int(pgid), signal.SIGTERM)
        except ProcessLookupError:
            pass


def _duration(seconds: float | None) -> str:
    return "-" if seconds is None else str(dt.timedelta(seconds=int(seconds)))


def describe(event: dict[str, Any]) -> str:
    """One human line for an event (used by `run`, `resume` and `logs --events`)."""
    kind, step = event.get("type"), event.get("step")
    if kind == "run_started":
        resumed = f", resumed from {event['resumed_from']}" if event.get("resumed_from") else ""
        return (f"started: {event.get('total_steps')} steps, {event.get('num_train_examples')} examples, "
                f"{event.get('params_trainable', 0):,} of {event.get('params_total', 0):,} parameters trainable"
                f"{resumed}")
    if kind == "log":
        total = event.get("total_steps") or "?"
        return (f"step {step}/{total}  loss {event.get('loss', float('nan')):.4f}  "
                f"{event.get('tokens_per_s') or 0:.0f} tok/s  elapsed {_duration(event.get('elapsed_s'))}  "
                f"ETA {_duration(event.get('eta_s'))}")
    if kind == "eval":
        return f"eval at step {step}: eval_loss {event.get('eval_loss')}, perplexity {event.get('perplexity')}"
    if kind == "sample":
        return f"sample at step {step}: {event.get('prompt')!r} -> {event.get('completion')!r}"
    if kind == "checkpoint":
        return f"checkpoint: {event.get('name')}"
    if kind == "warning":
        return f"warning: {event.get('message')}"
    if kind == "run_finished":
        return f"finished at step {step} ({event.get('reason')}); saved to {event.get('final_path')}"
    if kind == "run_stopped":
        return f"stopped at step {step}: {event.get('reason')}; checkpoint {event.get('checkpoint')}"
    if kind == "run_failed":
        return (f"FAILED ({event.get('reason')}): {event.get('message')}\n"
                f"suggestion: {event.get('suggestion')}")
    return ""


# --- runs / logs / stop -------------------------------------------------------------------------
def cmd_runs(args: argparse.Namespace) -> int:
    from runner.registry import list_runs, runs_root

    runs = list_runs(args.runs_dir)
    if args.json:
        print(json.dumps([r.as_dict() for r in runs], indent=2))
        return EXIT_OK
    if not runs:
        print(f"no runs in {runs_root(args.runs_dir)}")
        return EXIT_OK
    rows = [("RUN", "STATE", "PRESET", "PROGRESS", "LOSS", "STARTED", "DURATION")]
    for r in runs:
        progress = f"{r.step}/{r.total_steps}" if r.total_steps else (str(r.step) if r.step is not None else "-")
        if r.progress is not None:
            progress += f" ({r.progress:.0%})"
        started = dt.datetime.fromtimestamp(r.started).strftime("%Y-%m-%d %H:%M") if r.started else "-"
        rows.append((r.name, r.state, r.preset or "-", progress,
                     f"{r.last_loss:.4f}" if r.last_loss is not None else "-", started, _duration(r.duration)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    from runner.slurm import scheduler_line

    for r in runs:
        line = scheduler_line(r.status)
        if line:
            print(f"{r.name}: {line}")
    for r in runs:
        if r.state == "lost":
            print(f"\n{r.name} is lost: its process is gone but it never recorded an end. Last output:")
            print("    " + "\n    ".join(r.log_tail.splitlines() or ["(empty log)"]))
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    from runner.registry import effective_state

    run = _resolve(args)
    if run is None:
        return EXIT_USAGE
    path = run.events if args.events else run.log
    from runner.slurm import scheduler_line

    line = scheduler_line(run.read_status())
    if line:
        print(f"[tunedeck] {line}", file=sys.stderr, flush=True)
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        handle = None
    data = handle.read() if handle else b""
    text = data.decode("utf-8", "replace")
    if args.lines:
        text = "\n".join(text.splitlines()[-args.lines:]) + ("\n" if text else "")
    sys.stdout.write(text)
    sys.stdout.flush()
    if not args.follow:
        return EXIT_OK
    try:
        while True:
            chunk = handle.read() if handle else b""
            if chunk:
                sys.stdout.write(chunk.decode("utf-8", "replace"))
                sys.stdout.flush()
                continue
            if effective_state(run.read_status()) not in ("starting", "running", "stopping"):
                if handle:
                    sys.stdout.write(handle.read().decode("utf-8", "replace"))
                return EXIT_OK
            if handle is None and path.exists():
                handle = open(path, "rb")
            time.sleep(0.3)
    except KeyboardInterrupt:
        return EXIT_OK  # stops following only; the run goes on


def cmd_stop(args: argparse.Namespace) -> int:
    from runner.stop import stop

    run = _resolve(args)
    if run is None:
        return EXIT_USAGE
    from runner.commands import slurm_cmds

    if slurm_cmds.is_slurm_run(run):
        return slurm_cmds.stop_run(run, args.grace)
    print(f"stopping {run.name} (grace {args.grace:g}s)...", flush=True)
    result = stop(run, grace=args.grace)
    print(result.message)
    if result.signalled:
        print("no process of the run is left" if not result.leftover_pids else
              f"WARNING: processes still alive: {result.leftover_pids}")
        if result.gpu_memory_released is not None:
            print("GPU memory released" if result.gpu_memory_released else "WARNING: a GPU still lists the run's processes")
    return EXIT_OK if not result.leftover_pids else EXIT_FAILED
