"""A SLURM batch script for a multi-node run: one task per node, each starting `accelerate launch`.

Assumes tunedeck (with its training dependencies) is installed in the Python environment the
job activates, and that the run directory is on a filesystem every node sees.
"""

from __future__ import annotations

import re
import shlex

from runner.launch import TRAIN_MODULE, mixed_precision
from runner.schema import Config

from . import block


def sbatch_script(config: Config, *, name: str) -> str:
    launch = config.launch
    nodes, gpus = launch.num_machines, launch.num_processes
    job = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "tunedeck"
    strategy_flag = {"none": "--multi_gpu", "ddp": "--multi_gpu"}.get(launch.strategy)
    if strategy_flag is None:  # FSDP / DeepSpeed settings live in the accelerate config the job writes
        launch_flags = '--config_file "$RUN_DIR/accelerate_config.yaml"'
    else:
        launch_flags = strategy_flag
    accel_yaml = ""
    if strategy_flag is None:
        from .accelerate import accelerate_yaml_dict
        import yaml

        accel_yaml = (
            "cat > \"$RUN_DIR/accelerate_config.yaml\" <<'TUNEDECK_ACCELERATE'\n"
            + yaml.safe_dump(accelerate_yaml_dict(config, cuda=True), sort_keys=False)
            + "TUNEDECK_ACCELERATE\n"
        )
    fill_ip = ""
    if not launch.main_process_ip:
        # The run's snapshot records the main node (a multi-node preset needs one to validate).
        fill_ip = ('sed -i "s|^main_process_ip = \\"\\"|main_process_ip = \\"$MAIN_PROCESS_IP\\"|" '
                   '"$RUN_DIR/config.toml"\n')
    return f"""#!/bin/bash
# SLURM job for tunedeck preset {name!r}: {nodes} node(s) x {gpus} GPU(s).
# Submit with `sbatch THIS_FILE`. Assumes tunedeck is installed in the environment activated
# below and that the working directory is on a filesystem shared by all nodes.
#SBATCH --job-name={job}
#SBATCH --nodes={nodes}
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:{gpus}
#SBATCH --exclusive
#SBATCH --output=%x-%j.out

set -euo pipefail
# source /path/to/venv/bin/activate   # the environment with tunedeck installed

GPUS_PER_NODE={gpus}
RUN_DIR="${{TUNEDECK_RUN_DIR:-$PWD/runs/{job}-$SLURM_JOB_ID}}"
mkdir -p "$RUN_DIR/checkpoints"

# Rank 0 runs on the first node of the allocation; every node connects to it.
MAIN_PROCESS_IP=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)

# The preset, written once by the batch host into the shared run directory.
cat > "$RUN_DIR/config.toml" <<'TUNEDECK_PRESET'
{block.raw(config).rstrip()}
TUNEDECK_PRESET
{fill_ip}{accel_yaml}
export MAIN_PROCESS_IP RUN_DIR GPUS_PER_NODE
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

# One task per node; $SLURM_NODEID (this node's index) is expanded on each node, hence the single quotes.
# accelerate's --num_processes is the total over all machines.
srun --nodes="$SLURM_NNODES" --ntasks-per-node=1 bash -c 'python -m accelerate.commands.launch \\
  {launch_flags} \\
  --num_processes $((SLURM_NNODES * GPUS_PER_NODE)) \\
  --num_machines "$SLURM_NNODES" \\
  --machine_rank "$SLURM_NODEID" \\
  --main_process_ip "$MAIN_PROCESS_IP" \\
  --main_process_port {launch.main_process_port} \\
  --mixed_precision {shlex.quote(mixed_precision(config))} \\
  --dynamo_backend no \\
  -m {TRAIN_MODULE} "$RUN_DIR"'
"""
