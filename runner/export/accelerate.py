"""`accelerate launch` command line and accelerate config YAML for a config (runner.launch does the work)."""

from __future__ import annotations

import shlex
from typing import Any

from runner.launch import accelerate_config, build_argv
from runner.schema import Config

from . import block

RUN_DIR_PLACEHOLDER = "runs/RUN_NAME"


def accelerate_cmd(config: Config, *, cuda: bool, name: str) -> str:
    """The exact argv tunedeck would launch, shell-quoted for reading and pasting (never run via a shell here)."""
    argv = build_argv(config, RUN_DIR_PLACEHOLDER, cuda=cuda, python="python")
    return (
        f"# `accelerate launch` for preset {name!r}, as `tunedeck run` starts it.\n"
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
    if base["num_processes"] > 1:
        base["distributed_type"] = "MULTI_GPU" if cuda else "MULTI_CPU"
    else:
        base["distributed_type"] = "NO"
    return base


def accelerate_yaml(config: Config, *, cuda: bool, name: str) -> str:
    import yaml

    body = yaml.safe_dump(accelerate_yaml_dict(config, cuda=cuda), sort_keys=False)
    return (
        f"# accelerate config for preset {name!r}: accelerate launch --config_file THIS_FILE ...\n"
        + block.commented(config)
        + body
    )
