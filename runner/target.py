"""The hardware a preset targets (launch.device), which is not always the machine tunedeck runs on.

A login node without a GPU prepares GPU jobs: exports and SLURM submissions describe the target,
and only launching here is checked against this machine (runner.validate's "on this machine" rules).
"""

from __future__ import annotations

from runner.schema import Config

# Optimizers implemented by bitsandbytes: they need CUDA.
BNB_OPTIMIZERS = frozenset({
    "adamw_bnb_8bit", "adamw_8bit", "ademamix_8bit", "lion_8bit", "lion_32bit", "paged_adamw_32bit",
    "paged_adamw_8bit", "paged_ademamix_32bit", "paged_ademamix_8bit", "paged_lion_32bit", "paged_lion_8bit",
    "rmsprop_bnb", "rmsprop_bnb_8bit", "rmsprop_bnb_32bit", "galore_adamw_8bit", "galore_adamw_8bit_layerwise",
})


def gpu_only_settings(config: Config) -> list[tuple[str, str, str]]:
    """(key, what needs the GPU, what to use on a CPU) for every setting that cannot run without CUDA."""
    t, q, m, la = config.training, config.quantization, config.model, config.launch
    found = []
    if t.fp16:
        found.append(("training.fp16", "fp16 mixed precision needs a CUDA GPU", "use bf16 or no mixed precision on CPU"))
    if q.load_in_4bit or q.load_in_8bit:
        found.append(("quantization.load_in_4bit" if q.load_in_4bit else "quantization.load_in_8bit",
                      "bitsandbytes 4/8-bit loading needs an NVIDIA GPU with CUDA", "turn quantization off to train on CPU"))
    if t.optim in BNB_OPTIMIZERS:
        found.append(("training.optim", f"'{t.optim}' is a bitsandbytes optimizer and needs a CUDA GPU", "use adamw_torch on CPU"))
    if m.attn_implementation == "flash_attention_2":
        found.append(("model.attn_implementation", "flash_attention_2 needs an NVIDIA GPU", "use sdpa"))
    if la.strategy in ("fsdp", "deepspeed"):
        found.append(("launch.strategy", f"{la.strategy} needs GPUs", "use 'ddp' or 'none' on CPU"))
    return found


def gpu_hints(config: Config) -> list[str]:
    """Keys whose values say the preset is meant for a GPU (launch.device = 'auto' reads these)."""
    keys = [key for key, _, _ in gpu_only_settings(config)]
    t, la = config.training, config.launch
    if t.bf16:
        keys.append("training.bf16")
    if t.tf32:
        keys.append("training.tf32")
    if la.gpu_ids.strip() not in ("", "all"):
        keys.append("launch.gpu_ids")
    return keys


def target_cuda(config: Config, machine_cuda: bool | None = None) -> bool:
    """Whether the run is meant for CUDA GPUs.

    'cuda'/'cpu' say so; 'auto' means CUDA when a GPU setting is present, otherwise what this
    machine has (`machine_cuda`, when launching here) or the CPU (exports, where no machine is known).
    """
    device = config.launch.device
    if device != "auto":
        return device == "cuda"
    if gpu_hints(config):
        return True
    return bool(machine_cuda)


def describe(config: Config, machine_cuda: bool | None = None) -> str:
    """'CUDA GPUs' / 'CPU' with why, for export headers and the launch dialog."""
    device = config.launch.device
    cuda = target_cuda(config, machine_cuda)
    if device != "auto":
        why = f"launch.device = {device!r}"
    elif cuda and gpu_hints(config):
        why = "auto: " + ", ".join(gpu_hints(config)) + " need a GPU"
    elif cuda:
        why = "auto: this machine has a GPU"
    else:
        why = "auto: no GPU setting in the preset"
    return f"{'CUDA GPUs' if cuda else 'CPU'} ({why})"
