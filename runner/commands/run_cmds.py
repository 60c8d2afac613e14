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

from runner.exits import FAILED as EXIT_FAILED, INTERRUPTED as EXIT_STOPPED, OK as EXIT_OK, USAGE as EXIT_USAGE
from runner.printable import printable
from runner.progress_lines import duration_text, eval_line, log_line
from runner.problems import Problem


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="train: launch a preset or file with accelerate (detached from this terminal)")
    p.add_argument("source", metavar="PRESET_OR_FILE")
    _add_set(p)
    p.add_argument("--detach", "-d", action="store_true", help="return at once and print the run directory")
    p.add_argument("--runs-dir", metavar="DIR", help="where the run directory goes (default: $TUNEDECK_RUNS_DIR, "
                   "else training.output_dir, else ~/.local/state/tunedeck/runs)")
    p.add_argument("--run-dir", metavar="DIR", help="use exactly this (new) run directory")
    from runner.commands.slurm_cmds import add_run_options

    add_run_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("runs", help="list every known run with state, progress, last loss, duration and failure reason")
    p.add_argument("--runs-dir", metavar="DIR", help="only the runs directly in DIR")
    p.add_argument("--add", metavar="RUN_DIR", action="append", default=[],
                   help="record a run directory (e.g. one you moved or copied here) so every command finds it")
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
    from runner.rundir import RunDirError
    from runner.target import target_cuda
    from runner.validate import machine_context

    if getattr(args, "slurm", False):
        from runner.commands.slurm_cmds import submit_run

        return submit_run(args)
    machine = machine_context()
    loaded = presets.load(args.source, args.overrides, context=machine)
    _print_problems(loaded.problems)
    if loaded.config is None or loaded.errors:
        print(f"error: not launching {printable(args.source)} here: fix the error(s) above", file=sys.stderr)
        return EXIT_USAGE
    cuda = target_cuda(loaded.config, machine.cuda_available)
    try:
        launch.require_address(loaded.config, "launching here")
    except ConfigError as exc:
        _print_problems(exc.problems)
        return EXIT_USAGE
    from runner.data_check import print_check

    if not print_check(loaded.config):  # before any run directory exists
        print(f"error: not launching {args.source}: fix the data error(s) above", file=sys.stderr)
        return EXIT_USAGE
    try:
        # runs_dir None: runner.runs_home.runs_dir decides ($TUNEDECK_RUNS_DIR, training.output_dir, the runs home)
        run = launch.prepare(loaded.config, preset_name=loaded.name, runs_dir=args.runs_dir,
                             run_dir=args.run_dir, cuda=cuda)
    except FileExistsError:
        print(f"error: --run-dir {args.run_dir} already exists; choose a new directory", file=sys.stderr)
        return EXIT_USAGE
    except RunDirError as exc:
        print(f"error ({exc.reason}): {exc}; nothing was created", file=sys.stderr)
        return EXIT_FAILED if exc.reason == "disk_full" else EXIT_USAGE
    proc = launch.start(run)
    print(f"run directory: {run.path}")
    if args.detach:
        print(f"follow it with: tunedeck logs {run.name} -f   (stop: tunedeck stop {run.name})")
        return EXIT_OK
    return watch(run, proc)


def cmd_resume(args: argparse.Namespace) -> int:
    from runner import run_ops

    run = _resolve(args)
    if run is None:
        return EXIT_USAGE
    from runner.events import EventTail

    tail = EventTail(run.events, from_end=True)  # this launch's events only
    outcome = run_ops.resume(run, args.overrides, force=args.force)
    if not outcome.ok:
        print(f"error: {outcome.message}", file=sys.stderr)
        for line in outcome.details:
            print(f"  {line}", file=sys.stderr)
        return EXIT_USAGE
    print(outcome.message)
    print(f"run directory: {run.path}")
    if args.detach or outcome.message.startswith("resubmitted"):  # a SLURM job: follow it with `logs -f`
        return EXIT_OK
    return watch(run, None, tail=tail)


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
            settled = effective_state(run) in ("lost", "failed", "finished", "stopped")
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
    """SIGTERM the run's trainers (or its verified group) and return: the loop above keeps printing
    while the trainer saves."""
    from runner.registry import run_processes, verified_group

    pgid, _ = verified_group(run, run.read_status())
    processes = run_processes(run.path, pgid)
    targets = [pid for pid, trainer in processes.items() if trainer]
    run.update_status(state="stopping", stop_requested=time.time())
    try:
        if targets:
            for pid in targets:
                os.kill(pid, signal.SIGTERM)
        elif pgid:
            os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def describe(event: dict[str, Any]) -> str:
    """One human line for an event (used by `run`, `resume` and `logs --events`)."""
    kind, step = event.get("type"), event.get("step")
    if kind == "run_started":
        resumed = f", resumed from {event['resumed_from']}" if event.get("resumed_from") else ""
        return (f"started: {event.get('total_steps')} steps, {event.get('num_train_examples')} examples, "
                f"{event.get('params_trainable', 0):,} of {event.get('params_total', 0):,} parameters trainable"
                f"{resumed}")
    if kind == "rank_ready":
        node = f" (SLURM node {event['node']})" if event.get("node") else ""
        return f"rank {event.get('rank')} of {event.get('world_size')} ready on {event.get('host')}{node}"
    if kind == "log":
        return log_line(event)  # the trainer's own output.log line for this step
    if kind == "eval":
        return eval_line(event)
    if kind == "sample":
        return f"sample at step {step}: {event.get('prompt')!r} -> {event.get('completion')!r}"
    if kind == "checkpoint":
        return f"checkpoint: {event.get('name')}"
    if kind == "warning":
        return f"warning: {printable(event.get('message'), 2000)}"
    if kind == "run_finished":
        return f"finished at step {step} ({event.get('reason')}); saved to {event.get('final_path')}"
    if kind == "run_stopped":
        return f"stopped at step {step}: {event.get('reason')}; checkpoint {event.get('checkpoint')}"
    if kind == "run_failed":
        return (f"FAILED ({printable(event.get('reason'))}): {printable(event.get('message'), 2000)}\n"
                f"suggestion: {printable(event.get('suggestion'), 2000)}")  # may quote a data row or a path
    return ""


# --- runs / logs / stop -------------------------------------------------------------------------
def cmd_runs(args: argparse.Namespace) -> int:
    from runner.registry import listing, resolve
    from runner.runs_home import forget, record

    for path in args.add:
        target = Path(path).expanduser()
        if not (target / "config.toml").is_file():
            print(f"error: {target} is not a run directory (it has no config.toml)", file=sys.stderr)
            return EXIT_USAGE
        record(resolve(str(target)).path)
        print(f"recorded {target.resolve()}")
    found = listing(args.runs_dir)
    runs = found.runs
    if args.json:  # vanished runs stay in the index until a listing for people has shown them
        print(json.dumps([r.as_dict() for r in runs], indent=2))
        return EXIT_OK
    for path in found.removed:
        print(f"removed from the list: {path} (the directory is gone)")
        forget(path)  # reported once, then dropped from the index
    if not runs:
        where = f" in {Path(args.runs_dir).resolve()}" if args.runs_dir else ""
        print(f"no runs{where} yet (new runs go to {_runs_home_text()})")
        return EXIT_OK
    rows = [("RUN", "STATE", "PROGRESS", "LOSS", "STARTED", "DURATION", "PRESET", "REASON")]
    for r in runs:
        progress = f"{r.step}/{r.total_steps}" if r.total_steps else (str(r.step) if r.step is not None else "-")
        if r.progress is not None:
            progress += f" ({r.progress:.0%})"
        started = dt.datetime.fromtimestamp(r.started).strftime("%Y-%m-%d %H:%M") if r.started else "-"
        rows.append((r.name, r.label, progress, f"{r.last_loss:.4f}" if r.last_loss is not None else "-", started,
                     duration_text(r.duration, unknown="-"), printable(r.preset or "-"), printable(r.reason or "", 40)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    from runner.slurm import scheduler_line

    for r in runs:
        line = scheduler_line(r.status)
        if line:
            print(f"{r.name}: {printable(line)}")
    for r in runs:
        if r.state == "failed":
            print(f"\n{r.name} failed ({printable(r.reason or 'error', 40)}): {printable(r.message or '(no message)', 400)}")
            if r.status.get("suggestion"):
                print(f"    suggestion: {printable(r.status['suggestion'], 600)}")
        elif r.state == "lost":
            print(f"\n{r.name} is lost: its processes are gone but it never recorded an end. Last output:")
            print("    " + "\n    ".join(printable(line, 400) for line in r.log_tail.splitlines() or ["(empty log)"]))
        elif r.unsupervised:
            print(f"\n{r.name} is running (unsupervised): its supervisor died, the trainer goes on; "
                  f"`tunedeck stop {r.name}` stops it (checkpoint first)")
    return EXIT_OK


def _runs_home_text() -> str:
    from runner.runs_home import runs_dir

    return str(runs_dir())


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
            if effective_state(run) not in ("starting", "running", "stopping"):
                if handle:
                    sys.stdout.write(handle.read().decode("utf-8", "replace"))
                return EXIT_OK
            if handle is None and path.exists():
                handle = open(path, "rb")
            time.sleep(0.3)
    except KeyboardInterrupt:
        return EXIT_OK  # stops following only; the run goes on


def cmd_stop(args: argparse.Namespace) -> int:
    from runner.stop import has_processes, stop

    run = _resolve(args)
    if run is None:
        return EXIT_USAGE
    from runner.commands import slurm_cmds

    if slurm_cmds.is_slurm_run(run):
        return slurm_cmds.stop_run(run, args.grace)
    if has_processes(run):  # else stop() signals nothing and its message, printed first, says why
        print(f"stopping {run.name} (grace {args.grace:g}s)...", flush=True)
    result = stop(run, grace=args.grace)
    print(result.message)
    if result.signalled:
        print("no process of the run is left" if not result.leftover_pids else
              f"WARNING: processes still alive: {result.leftover_pids}")
        if result.gpu_memory_released is not None:
            print("GPU memory released" if result.gpu_memory_released else "WARNING: a GPU still lists the run's processes")
    return EXIT_FAILED if result.leftover_pids or result.elsewhere else EXIT_OK
