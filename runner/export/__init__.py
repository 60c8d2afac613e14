"""Export a config for other tools: the accelerate command line or config file, TrainingArguments
JSON, a standalone training script, or a SLURM sbatch script.

Every text export embeds the preset in a "tunedeck-preset" block (see runner.export.block), so
`tunedeck import` of the exported file gives back the same config; the TrainingArguments JSON,
which cannot hold comments, carries the [training] section only.
"""

from __future__ import annotations

from typing import Callable

from runner.schema import Config

FORMATS = ("accelerate-cmd", "accelerate-yaml", "training-args", "script", "sbatch")
SUFFIXES = {"accelerate-cmd": ".sh", "accelerate-yaml": ".yaml", "training-args": ".json", "script": ".py",
            "sbatch": ".sbatch"}
DESCRIPTIONS = {
    "accelerate-cmd": "the `accelerate launch` command line tunedeck runs",
    "accelerate-yaml": "an accelerate config file (accelerate launch --config_file)",
    "training-args": "transformers TrainingArguments as JSON",
    "script": "a standalone Python training script (no tunedeck needed)",
    "sbatch": "a SLURM batch script for multi-node runs",
}


def export_text(config: Config, fmt: str, *, name: str, device: str | None = None, cuda: bool | None = None) -> str:
    """The exported file's text, for the hardware the preset targets (launch.device; `device`, or
    `cuda` True/False, overrides it). Never this machine's: a login node without a GPU exports GPU jobs."""
    from runner.target import target_cuda

    if device is None and cuda is not None:
        device = "cuda" if cuda else "cpu"
    if device is not None:
        config = config.model_copy(update={"launch": config.launch.model_copy(update={"device": device})})
    config = config.model_copy(update={"extends": ""})  # self-contained, like a run's snapshot
    cuda = target_cuda(config)
    builders: dict[str, Callable[[], str]] = {
        "accelerate-cmd": lambda: _accelerate().accelerate_cmd(config, cuda=cuda, name=name),
        "accelerate-yaml": lambda: _accelerate().accelerate_yaml(config, cuda=cuda, name=name),
        "training-args": lambda: _training_args().training_args_json(config, cuda=cuda, name=name),
        "script": lambda: _script().standalone_script(config, name=name),
        "sbatch": lambda: _sbatch().sbatch_script(config, name=name),
    }
    if fmt not in builders:
        raise ValueError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
    return builders[fmt]()


def _accelerate():
    from . import accelerate

    return accelerate


def _training_args():
    from . import training_args

    return training_args


def _script():
    from . import script

    return script


def _sbatch():
    from . import sbatch

    return sbatch


__all__ = ["DESCRIPTIONS", "FORMATS", "SUFFIXES", "export_text"]
