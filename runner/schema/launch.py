"""[launch]: how `accelerate launch` starts the trainer: processes, GPUs, precision, sharding, nodes."""

from __future__ import annotations

from typing import Literal

from ._field import Section, setting


def resolve_mixed_precision(chosen: str, bf16: bool, fp16: bool) -> str:
    """What launch.mixed_precision means: 'auto' follows training.bf16 / training.fp16. The one
    resolution every part (launcher, exports, validation, estimator) uses."""
    if chosen != "auto":
        return chosen
    return "bf16" if bf16 else "fp16" if fp16 else "no"


class LaunchSection(Section):
    device: Literal["auto", "cuda", "cpu"] = setting(
        "auto",
        label="Target device",
        what="The hardware the run is meant for, which exports (accelerate command and config, script, "
        "sbatch) describe and which `tunedeck run` starts on. 'auto': GPU-only settings in the preset "
        "(fp16 or bf16 mixed precision, 4/8-bit loading, bitsandbytes optimizers, flash attention, "
        "FSDP/DeepSpeed, tf32, listed GPU ids) mean CUDA; without any, a run here uses this machine's "
        "GPU if it has one and exports target the CPU. 'cuda' or 'cpu' say it outright.",
        up="'cuda' prepares a GPU job even from a login node without a GPU; checks that need the "
        "GPU are then notes 'on this machine' and block only launching here.",
        down="'cpu' runs on processors only: slow for real models, right for the demo and for tests; "
        "GPU-only settings become errors.",
        typical="auto; cuda for a GPU preset in full precision exported from a machine without a GPU",
    )
    num_processes: int = setting(
        1,
        label="Processes",
        ge=1,
        le=1024,
        what="How many training processes start on each machine, normally one per GPU of a node. "
        "accelerate's own --num_processes is the total: this times launch.num_machines.",
        up="More processes train on more GPUs at once: the effective batch grows with them and each "
        "epoch takes proportionally fewer steps.",
        down="Fewer processes use fewer GPUs.",
        typical="the number of GPUs you want to use",
    )
    gpu_ids: str = setting(
        "all",
        label="GPU ids",
        what="Which GPUs to use: 'all' or a comma-separated list of indices such as '0,1'.",
        up="List GPUs that are free; other people's jobs on a GPU take its memory.",
        down="",
        typical="all",
    )
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = setting(
        "auto",
        label="Mixed precision",
        what="accelerate's --mixed_precision flag. 'auto' follows training.bf16 / training.fp16, which "
        "keeps the two consistent.",
        up="Lower-precision modes (bf16, fp16) save memory and run faster on GPUs that support them.",
        down="'no' runs everything in full precision: slowest and largest, numerically safest.",
        typical="auto",
    )
    strategy: Literal["none", "ddp", "fsdp", "deepspeed"] = setting(
        "none",
        label="Distribution",
        what="How work is spread over processes: 'ddp' copies the whole model to every GPU and averages "
        "gradients; 'fsdp' and 'deepspeed' (ZeRO) shard weights, gradients and optimizer state "
        "across GPUs so bigger models fit.",
        up="Sharding (fsdp, deepspeed stage 3) fits the largest models but adds communication.",
        down="'ddp' is simplest and fastest when the model fits on one GPU; 'none' for one process.",
        typical="none on one GPU, ddp when the model fits per GPU, fsdp or deepspeed when it does not",
    )
    zero_stage: Literal[1, 2, 3] = setting(
        2,
        label="ZeRO stage",
        applies="launch.strategy=deepspeed",
        what="DeepSpeed ZeRO stage: 1 shards optimizer state, 2 also gradients, 3 also the weights.",
        up="A higher stage saves more memory per GPU at more communication per step.",
        down="A lower stage is faster when memory allows.",
        typical="2; 3 for models that do not fit otherwise",
    )
    deepspeed_config: str = setting(
        "",
        label="DeepSpeed config file",
        applies="launch.strategy=deepspeed",
        what="A DeepSpeed JSON config file (the `deepspeed_config_file` of accelerate) used instead of the "
        "settings tunedeck generates from zero_stage. Empty: tunedeck writes its own DeepSpeed settings. "
        "A relative path is taken from the directory you launch in.",
        up="A file of your own controls everything DeepSpeed offers (CPU/NVMe offload, bucket sizes, "
        "ZeRO++); keep its 'auto' values so batch size, clipping and precision follow this preset.",
        down="Empty keeps the generated settings, which always agree with zero_stage and the [training] "
        "values.",
        typical="empty; a ds_z3_config.json from your existing setup when you bring one along",
    )
    num_machines: int = setting(
        1,
        label="Machines",
        ge=1,
        le=4096,
        what="How many machines (nodes) take part in the run; each runs this launch with its own "
        "machine_rank.",
        up="More machines train faster on more GPUs, and need a fast network between them.",
        down="One machine needs no networking setup.",
        typical="1",
    )
    machine_rank: int = setting(
        0,
        label="Machine rank",
        ge=0,
        le=4095,
        what="This machine's index among num_machines (0 is the main one).",
        up="Each node gets a distinct rank from 0 to num_machines - 1; the main node is 0.",
        down="Rank 0 is the main node, which the others connect to.",
        typical="0 on the main node",
    )
    main_process_ip: str = setting(
        "",
        applies="launch.num_machines>1",
        label="Main node address",
        what="The IP address or host name of the machine with rank 0; required when num_machines > 1.",
        up="",
        down="",
        typical="the first node's address on the cluster network",
    )
    main_process_port: int = setting(
        29500,
        applies="launch.num_machines>1",
        label="Main node port",
        ge=1,
        le=65535,
        what="The TCP port the main process listens on for the others.",
        up="Any free port above 1024 works; change it when two runs share a node.",
        down="Ports below 1024 need root; avoid them.",
        typical="29500",
    )
