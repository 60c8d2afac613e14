"""`tunedeck run PRESET --slurm ...`: submit to SLURM from a login node; and the SLURM side of
`runs`, `logs`, `stop` and `resume` (runner.slurm does the work)."""

from __future__ import annotations

import argparse
import os
import sys

from runner.exits import FAILED as EXIT_FAILED, OK as EXIT_OK, USAGE as EXIT_USAGE


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _time(text: str) -> str:
    from runner.export.sbatch import check_time

    try:
        return check_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _name(what: str):
    def check(text: str) -> str:
        from runner.export.sbatch import check_name

        try:
            return check_name(text, what)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return check


def add_run_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("SLURM (submit from a login node instead of training here)")
    g.add_argument("--slurm", action="store_true",
                   help="submit an sbatch job (one task per node, accelerate on each) and return; the run "
                        "directory goes under --runs-dir or ./runs, which every node must see")
    g.add_argument("--nodes", type=_positive, metavar="N", help="nodes to allocate (default: launch.num_machines)")
    g.add_argument("--gpus-per-node", type=_positive, metavar="G",
                   help="GPUs, one process each, per node (default: launch.num_processes)")
    g.add_argument("--partition", metavar="P", type=_name("partition"), help="the SLURM partition (default: the cluster's default)")
    g.add_argument("--time", type=_time, metavar="HH:MM:SS", help="the job's time limit")
    g.add_argument("--account", metavar="A", type=_name("account"), help="the account to charge")


def options_from(args: argparse.Namespace):
    from runner.export.sbatch import JobOptions

    return JobOptions(nodes=args.nodes, gpus_per_node=args.gpus_per_node, partition=args.partition,
                      time=args.time, account=args.account)


def submit_run(args: argparse.Namespace) -> int:
    from runner import presets, slurm
    from runner.problems import ConfigError
    from runner.rundir import RunDirError

    # This machine's hardware is not the cluster's: no "on this machine" checks.
    loaded = presets.load(args.source, args.overrides)
    for problem in loaded.problems:
        print(problem.format(), file=sys.stderr)
    if loaded.config is None or loaded.errors:
        print(f"error: not submitting {args.source}: fix the error(s) above", file=sys.stderr)
        return EXIT_USAGE
    runs_dir = args.runs_dir  # else runner.slurm.shared_runs_dir decides (./runs by default)
    try:
        run = slurm.submit(loaded.config, preset_name=loaded.name, options=options_from(args), runs_dir=runs_dir)
    except slurm.SlurmError as exc:
        print(f"error: not submitted: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem.format(), file=sys.stderr)
        return EXIT_USAGE
    except RunDirError as exc:
        print(f"error: not submitted ({exc.reason}): {exc}; nothing was created", file=sys.stderr)
        return EXIT_USAGE
    job_id = run.read_status()["slurm"]["job_id"]
    print(f"submitted SLURM job {job_id}")
    print(f"run directory: {run.path}")
    print(f"follow it with: tunedeck logs {run.name} -f   (state: tunedeck runs; stop: tunedeck stop {run.name})")
    return EXIT_OK


def is_slurm_run(run) -> bool:
    from runner.slurm import slurm_info

    return slurm_info(run.read_status()) is not None


def stop_run(run, grace: float) -> int:
    from runner import slurm

    print(f"stopping {run.name} through SLURM (grace {grace:g}s)...", flush=True)
    try:
        result = slurm.stop(run, grace=grace)
    except slurm.SlurmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(result.message)
    if not result.stopped:
        print("WARNING: the job is still listed by squeue", file=sys.stderr)
    return EXIT_OK if result.stopped else EXIT_FAILED
