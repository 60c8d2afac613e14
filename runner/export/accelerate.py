"""`accelerate launch` command line and accelerate config YAML for a config (runner.launch does the work)."""

from __future__ import annotations

import shlex
from typing import Any

from runner.launch import accelerate_config, build_argv, require_address
from runner.schema import Config
from runner.target import describe

from . import block

RUN_DIR_PLACEHOLDER = "runs/RUN_NAME"


def accelerate_cmd(config: Config, *, cuda: bool, name: str) -> str:
    """The exact argv tunedeck would launch, shell-quoted for reading and pasting (never run via a shell here)."""
    require_address(config, "the accelerate command")
    argv = build_argv(config, RUN_DIR_PLACEHOLDER, cuda=cuda, python="python")
    return (
        f"# `accelerate launch` for preset {name!r}, as `tunedeck run` starts it.\n"
        f"# Target: {describe(config)}; machine rank {config.launch.machine_rank} of {config.launch.num_machines}.\n"
        f"# {RUN_DIR_PLACEHOLDER} must hold config.toml (the preset below); tunedeck must be importable.\n"
        + block.commented(config)
        + shlex.join(argv) + "\n"
    )


def accelerate_yaml_dict(config: Config, *, cuda: bool) -> dict[str, Any]:
    """An accelerate config file for every strategy (runner.launch writes one only for FSDP/DeepSpeed)."""
    sharded = accelerate_config(config, cuda=cuda)
    if sharded is not None:
        return sharded
    # Same base keys as the sharded file: ask for the FSDP one and drop its FSDP part.
    as_fsdp = config.model_copy(update={"launch": config.launch.model_copy(update={"strategy": "fsdp"})})
    base = accelerate_config(as_fsdp, cuda=cuda)
    base.pop("fsdp_config")
    # As the command line does: several processes start through torchrun (accelerate's MULTI_GPU
    # launcher) even on CPU, where they join over gloo; accelerate's own MULTI_CPU would start one.
    base["distributed_type"] = "MULTI_GPU" if base["num_processes"] > 1 else "NO"
    if base["num_processes"] > 1:
        base["use_cpu"] = False
    return base


def accelerate_yaml(config: Config, *, cuda: bool, name: str) -> str:
    import yaml

    require_address(config, "the accelerate config file")
    body = yaml.safe_dump(accelerate_yaml_dict(config, cuda=cuda), sort_keys=False)
    return (
        f"# accelerate config for preset {name!r}: accelerate launch --config_file THIS_FILE ...\n"
        f"# Target: {describe(config)}.\n"
        + block.commented(config)
        + body
    )
