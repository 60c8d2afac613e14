"""A SLURM batch script: one task per node, each starting the same `accelerate launch` that
`tunedeck run` would start there, with that node's machine rank and the allocation's first node
as the main process address (so a multi-node preset needs no address of its own).

Used for `tunedeck export --to sbatch` (the script writes the preset into a new run directory) and
for `tunedeck run --slurm` (the run directory is prepared first and the script only starts it).
Assumes tunedeck (with its training dependencies) is importable by the Python the job uses, and
that the run directory is on a filesystem every node sees.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from runner.launch import accelerate_config, build_argv
from runner.schema import Config
from runner.target import describe, target_cuda

from . import block

# Values expanded by the shell on each node, never by us: they stand in for the argv's own values.
NODE_RANK, MAIN_IP, RUN_DIR, CONFIG_FILE = "@SLURM_NODEID@", "@MAIN_PROCESS_IP@", "@RUN_DIR@", "@ACCEL_CONFIG@"
PYTHON = "@PYTHON@"
_SHELL_VARS = {NODE_RANK: '"$SLURM_NODEID"', MAIN_IP: '"$MAIN_PROCESS_IP"', RUN_DIR: '"$RUN_DIR"',
               CONFIG_FILE: '"$RUN_DIR/accelerate_config.json"', PYTHON: '"$PYTHON"'}
_TIME = re.compile(r"^(\d+-)?\d{1,3}(:\d{2}){0,2}$")
_NAME = re.compile(r"^[A-Za-z0-9._,:@+=-]+$")  # partition / account names (a comma-separated list for partitions)
# sbatch reads #SBATCH lines itself (not a shell), so values there are checked, not quoted.
_DIRECTIVE_PATH = re.compile(r"^[A-Za-z0-9._/%+=@,:-]+$")


@dataclass(frozen=True)
class JobOptions:
    """What `tunedeck run --slurm` adds to the preset; None: the preset's own value / SLURM's default."""

    nodes: int | None = None
    gpus_per_node: int | None = None
    partition: str | None = None
    time: str | None = None
    account: str | None = None


def with_options(config: Config, options: JobOptions) -> Config:
    """The preset as the job runs it: --nodes is launch.num_machines, --gpus-per-node launch.num_processes."""
    launch = config.launch
    update = {}
    if options.nodes is not None:
        update["num_machines"] = options.nodes
    if options.gpus_per_node is not None:
        update["num_processes"] = options.gpus_per_node
    if update:
        launch = launch.model_copy(update=update)
    # The allocation decides which node is the main one; a preset's fixed address would be wrong there.
    launch = launch.model_copy(update={"machine_rank": 0, "main_process_ip": ""})
    return config.model_copy(update={"launch": launch})


def check_time(value: str) -> str:
    """SLURM's --time formats (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM:SS); ValueError otherwise."""
    if not _TIME.fullmatch(value):  # fullmatch: `$` alone lets a trailing newline through
        raise ValueError(f"--time {value!r} is not a SLURM time (use HH:MM:SS, MM or D-HH:MM:SS)")
    return value


def check_name(value: str, what: str) -> str:
    """A partition or account name as SLURM spells them; ValueError for anything else (spaces, quotes,
    newlines: a value on an #SBATCH line must not be able to end that line)."""
    if not _NAME.fullmatch(value):
        raise ValueError(f"--{what} {value!r} is not a SLURM {what} name (letters, digits and . _ - , only)")
    return value


def check_directive_path(path: str) -> str:
    if not _DIRECTIVE_PATH.fullmatch(path):
        raise ValueError(f"{path!r} cannot go on an #SBATCH line (no spaces, quotes or other special characters); "
                         "use a runs directory with a plain path")
    return path


def srun_argv(config: Config, *, python: str, resume: bool = False) -> list[str]:
    """The accelerate argv every node runs, with placeholders for what the shell fills in per node."""
    cuda = target_cuda(config)
    argv = build_argv(config, RUN_DIR, cuda=cuda, python=python, resume=resume)
    argv[argv.index("--machine_rank") + 1] = NODE_RANK
    if config.launch.num_machines > 1:
        at = argv.index("-m", 3)
        argv[at:at] = ["--main_process_ip", MAIN_IP]
    if "--config_file" in argv:
        argv[argv.index("--config_file") + 1] = CONFIG_FILE
    return argv


def _shell_words(argv: list[str]) -> str:
    return " ".join(_SHELL_VARS.get(word, shlex.quote(word)) for word in argv)


def sbatch_script(config: Config, *, name: str, run_dir: str | Path | None = None, python: str = "python",
                  options: JobOptions = JobOptions(), output: str | None = None, resume: bool = False) -> str:
    """The batch script. With `run_dir` it starts that prepared run; without, it creates one per job."""
    config = with_options(config, options)
    launch = config.launch
    nodes, per_node = launch.num_machines, launch.num_processes
    cuda = target_cuda(config)
    job = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "tunedeck"
    directives = [f"--job-name={job}", f"--nodes={nodes}", "--ntasks-per-node=1"]
    if cuda:
        directives += [f"--gres=gpu:{per_node}", "--exclusive"]
    if options.partition:
        directives.append(f"--partition={check_name(options.partition, 'partition')}")
    if options.time:
        directives.append(f"--time={check_time(options.time)}")
    if options.account:
        directives.append(f"--account={check_name(options.account, 'account')}")
    directives.append(f"--output={check_directive_path(output) if output else '%x-%j.out'}")
    if output:
        directives.append("--open-mode=append")  # a resumed run keeps the earlier output
    header = "\n".join(f"#SBATCH {d}" for d in directives)

    if run_dir is None:
        setup = f"""RUN_DIR="${{TUNEDECK_RUN_DIR:-$PWD/runs/{job}-$SLURM_JOB_ID}}"
mkdir -p "$RUN_DIR/checkpoints"
# The preset, written once by the batch host into the shared run directory.
cat > "$RUN_DIR/config.toml" <<'TUNEDECK_PRESET'
{block.raw(config).rstrip()}
TUNEDECK_PRESET
"""
        accel = accelerate_config(config, cuda=cuda)
        if accel is not None:
            import json

            setup += ("cat > \"$RUN_DIR/accelerate_config.json\" <<'TUNEDECK_ACCELERATE'\n"
                      + json.dumps(accel, indent=2) + "\nTUNEDECK_ACCELERATE\n")
        python_line = f"PYTHON={shlex.quote(python)}  # or the full path of the environment with tunedeck"
    else:
        setup = f"RUN_DIR={shlex.quote(str(run_dir))}  # prepared by tunedeck: config.toml, status.json\n"
        python_line = f"PYTHON={shlex.quote(python)}"
    argv = srun_argv(config, python=PYTHON, resume=resume)
    inner = "exec " + _shell_words(argv)
    settle = ""
    if run_dir is not None:
        settle = ('\ncode=0\nsrun --nodes="$SLURM_NNODES" --ntasks-per-node=1 bash -c ' + shlex.quote(inner)
                  + ' || code=$?\n# Record an end the trainers could not (a crash, a kill); its status is the job\'s.\n'
                  'exec "$PYTHON" -m runner.slurm settle "$RUN_DIR" "$code"\n')
        run_line = ""
    else:
        run_line = 'srun --nodes="$SLURM_NNODES" --ntasks-per-node=1 bash -c ' + shlex.quote(inner) + "\n"
    return f"""#!/bin/bash
# SLURM job for tunedeck preset {name!r}: {nodes} node(s) x {per_node} process(es), {per_node * nodes} in all.
# Target: {describe(config)}.
# Submit with `sbatch THIS_FILE`. The run directory must be on a filesystem every node sees.
{header}

set -euo pipefail
{python_line}
{setup}
# Rank 0 runs on the first node of the allocation; every node connects to its address.
MAIN_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)
MAIN_PROCESS_IP=$(scontrol show node "$MAIN_NODE" | sed -n 's/.*NodeAddr=\\([^ ]*\\).*/\\1/p' | head -n1)
MAIN_PROCESS_IP=${{MAIN_PROCESS_IP:-$MAIN_NODE}}
export MAIN_PROCESS_IP RUN_DIR PYTHON TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 ACCELERATE_DISABLE_RICH=1

# One task per node; $SLURM_NODEID (the node's index, its machine rank) is expanded on each node.
# accelerate's --num_processes is the total over all machines ({nodes} x {per_node}).
{run_line}{settle}"""
