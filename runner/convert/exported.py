"""Importers for what `tunedeck export` writes, and for plain accelerate configs and commands.

An export carries its preset in a "tunedeck-preset" block (runner.export.block): that block is
the base. Launch settings also readable natively (accelerate YAML keys, `accelerate launch`
flags, #SBATCH lines) override it where the file now says something else than the export
wrote, i.e. where the user edited them. A plain accelerate config without a block maps to
[launch] only.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

from runner.export import block
from runner.problems import ConfigError, Problem

from ._common import Imported, Mapper

DISTRIBUTED = {"NO": "none", "MULTI_GPU": "ddp", "MULTI_CPU": "ddp", "FSDP": "fsdp", "DEEPSPEED": "deepspeed"}
ACCELERATE_BOOKKEEPING = {
    "compute_environment": "tunedeck launches on the local machine",
    "debug": "accelerate debugging switch", "rdzv_backend": "set by tunedeck", "same_network": "set by tunedeck",
    "use_cpu": "follows whether CUDA is available at launch", "downcast_bf16": "TPU only",
    "enable_cpu_affinity": "not exposed", "tpu_env": "TPU only", "tpu_use_cluster": "TPU only",
    "tpu_use_sudo": "TPU only", "main_training_function": "tunedeck runs runner.train",
}


def looks_exported(text: str) -> bool:
    return block.extract(text) is not None


def _preset_raw(text: str, source: Path) -> dict[str, Any]:
    found = block.extract(text)
    assert found is not None
    toml_text, line = found
    try:
        raw = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Problem("error", f"the embedded tunedeck-preset block is not valid TOML: {exc}",
                                   file=str(source), line=line)]) from None
    return {k: v for k, v in raw.items() if isinstance(v, dict)}


# --- native launch settings -------------------------------------------------------------------
def accelerate_yaml_launch(data: dict[str, Any], result: Imported | None = None) -> dict[str, Any]:
    """[launch] values from an accelerate config dict; unknown keys reported into `result`."""
    result = result or Imported("accelerate config")
    m = Mapper(data, result)
    machines = int(m.get("num_machines", 1) or 1)
    launch: dict[str, Any] = {"num_machines": machines}
    if m.has("num_processes"):
        launch["num_processes"] = max(1, int(m.get("num_processes")) // machines)  # accelerate counts all machines
    for key in ("machine_rank", "main_process_port"):
        if m.has(key):
            launch[key] = int(m.get(key))
    if m.has("main_process_ip"):
        launch["main_process_ip"] = str(m.get("main_process_ip"))
    if m.has("gpu_ids"):
        launch["gpu_ids"] = str(m.get("gpu_ids"))
    if m.has("mixed_precision"):
        launch["mixed_precision"] = str(m.get("mixed_precision"))
    if m.has("distributed_type"):
        kind = str(m.get("distributed_type")).upper()
        if kind in DISTRIBUTED:
            launch["strategy"] = DISTRIBUTED[kind]
            if kind == "MULTI_GPU" and launch.get("num_processes", 1) * machines == 1:
                launch["strategy"] = "none"
        else:
            m.skip("distributed_type", f"tunedeck supports {', '.join(DISTRIBUTED)}")
    ds = data.get("deepspeed_config")
    if isinstance(ds, dict):
        m.seen.add("deepspeed_config")
        if "zero_stage" in ds:
            launch["zero_stage"] = int(ds["zero_stage"])
        if ds.get("deepspeed_config_file"):
            launch["deepspeed_config"] = str(ds["deepspeed_config_file"])  # the user's own DeepSpeed file
        for key, value in ds.items():
            if key not in ("zero_stage", "gradient_accumulation_steps", "gradient_clipping", "deepspeed_config_file",
                           "zero3_init_flag"):
                result.unmapped.append(_unmapped(f"deepspeed_config.{key}", value, "tunedeck sets this itself"))
    if isinstance(data.get("fsdp_config"), dict):
        m.seen.add("fsdp_config")  # tunedeck's FSDP settings are fixed (see runner.launch)
        result.notes.append("fsdp_config details are tunedeck's fixed FSDP settings; only the strategy was imported")
    for key, reason in ACCELERATE_BOOKKEEPING.items():
        m.skip(key, reason)
    m.leftovers()
    return launch


def _unmapped(key: str, value: Any, reason: str):
    from ._common import Unmapped

    return Unmapped(key, value, reason)


def accelerate_cmd_launch(text: str) -> dict[str, Any]:
    """[launch] values from the flags of an `accelerate launch` command line (build_argv's flags)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    try:
        argv = shlex.split(" ".join(ln.rstrip("\\") for ln in lines))
    except ValueError:
        return {}
    flags: dict[str, str] = {}
    for i, arg in enumerate(argv):
        if arg in ("-m", "--module"):
            break
        if arg.startswith("--") and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            flags[arg[2:].replace("-", "_")] = argv[i + 1]
    launch: dict[str, Any] = {}
    for key in ("num_processes", "num_machines", "machine_rank", "main_process_port"):
        if key in flags and flags[key].isdigit():
            launch[key] = int(flags[key])
    for key in ("main_process_ip", "gpu_ids", "mixed_precision"):
        if key in flags:
            launch[key] = flags[key]
    return launch


def sbatch_launch(text: str) -> dict[str, Any]:
    """[launch] values from #SBATCH lines: nodes -> num_machines, GPUs per node -> num_processes."""
    launch: dict[str, Any] = {}
    nodes = re.search(r"^#SBATCH\s+(?:--nodes[= ]|-N\s*)(\d+)", text, re.MULTILINE)
    gres = re.search(r"^#SBATCH\s+--gres[= ]gpu(?::[\w-]+)?:(\d+)", text, re.MULTILINE)
    port = re.search(r"--main_process_port\s+(\d+)", text)
    if nodes:
        launch["num_machines"] = int(nodes.group(1))
    if gres:
        launch["num_processes"] = int(gres.group(1))
    if port:
        launch["main_process_port"] = int(port.group(1))
    return launch


# --- formats -----------------------------------------------------------------------------------
def kind_of(text: str, source: Path) -> str:
    if text.startswith("#!") and "#SBATCH" in text:
        return "sbatch"
    if source.suffix == ".py" or "from transformers import" in text:
        return "script"
    if "accelerate.commands.launch" in text or re.search(r"^\s*accelerate\s+launch\b", text, re.MULTILINE):
        return "accelerate-cmd"
    return "accelerate-yaml"


def _native(kind: str, text: str, result: Imported | None = None) -> dict[str, Any]:
    if kind == "sbatch":
        return sbatch_launch(text)
    if kind == "accelerate-cmd":
        return accelerate_cmd_launch(text)
    if kind == "accelerate-yaml":
        import yaml

        data = yaml.safe_load(text)
        return accelerate_yaml_launch(data, result) if isinstance(data, dict) else {}
    return {}  # the script's settings are the block's, written out as Python


def convert_exported(text: str, source: Path) -> Imported:
    """A file written by `tunedeck export`: its preset block, plus launch settings edited since."""
    from runner import presets
    from runner.export import export_text

    kind = kind_of(text, source)
    result = Imported(f"tunedeck export ({kind})")
    result.raw = _preset_raw(text, source)
    if kind == "script":
        return result
    loaded = presets.loads(presets_text(result.raw))
    # What this export would say about [launch] for the embedded preset, vs what the file says now.
    cuda = "--cpu" not in text and "use_cpu: true" not in text
    written = _native(kind, export_text(loaded, kind, name=source.stem, cuda=cuda))
    now = _native(kind, text, Imported("ignored"))
    launch = result.raw.setdefault("launch", {})
    for key, value in now.items():
        if written.get(key) != value:
            result.notes.append(f"launch.{key} = {value!r} taken from the edited {kind} (the preset block "
                                f"says {launch.get(key)!r})")
            launch[key] = value
    _settle_precision(result)
    return result


def _settle_precision(result: Imported) -> None:
    """accelerate's mixed_precision becomes training.bf16/fp16 (the trainer's switch) with launch 'auto'."""
    launch = result.raw.get("launch", {})
    chosen = launch.get("mixed_precision")
    if chosen not in ("bf16", "fp16", "no"):
        return
    training = result.raw.setdefault("training", {})
    if chosen == "no" and not (training.get("bf16") or training.get("fp16")):
        return
    training["bf16"], training["fp16"] = chosen == "bf16", chosen == "fp16"
    launch["mixed_precision"] = "auto"
    result.notes.append(f"mixed_precision {chosen!r} became training.bf16/fp16 with launch.mixed_precision = 'auto'")


def presets_text(raw: dict[str, Any]) -> str:
    import tomlkit

    return tomlkit.dumps(raw)


def convert_accelerate_yaml(data: dict[str, Any], base: Path | None = None) -> Imported:
    """A plain accelerate config file (no tunedeck block): launch settings only."""
    result = Imported("accelerate config YAML")
    launch = accelerate_yaml_launch(data, result)
    result.raw["launch"] = launch
    _settle_precision(result)
    result.notes.append("an accelerate config describes only how to launch; model, data and training keep "
                        "their defaults")
    return result
