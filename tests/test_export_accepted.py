"""Exports the real tools accept: every shipped preset, single- and multi-node, as an accelerate
command, an accelerate config file and an sbatch script, read by accelerate's own argument parser,
launch-command validation and config-file loader (not by our reading of them). The three agree with
each other and with the argv `tunedeck run` would start on the preset's target hardware.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from runner import presets
from runner.export import export_text
from runner.launch import accelerate_config, build_argv
from runner.schema import Config
from runner.target import target_cuda

PRESETS = ("demo", "lora-1b", "qlora-8b", "full-small", "qlora-70b", "pretrain-gpt")
ADDRESS = "10.0.0.1"
LAYOUTS = {  # name: (processes per machine, machines)
    "single": (1, 1),
    "multi-gpu": (4, 1),
    "multi-node": (4, 2),
    "one-per-node": (1, 3),
}


@pytest.fixture(autouse=True)
def no_user_accelerate_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """accelerate falls back to ~/.cache/huggingface/accelerate/default_config.yaml: never here."""
    import accelerate.commands.launch as launch_module

    monkeypatch.setattr(launch_module, "default_config_file", str(tmp_path / "no-default-config.yaml"))


def _preset(name: str, layout: str, strategy: str | None = None) -> Config:
    config = presets.require(name).config
    per, machines = LAYOUTS[layout]
    update = {"num_processes": per, "num_machines": machines,
              "main_process_ip": ADDRESS if machines > 1 else ""}
    if strategy:
        update["strategy"] = strategy
    return config.model_copy(update={"launch": config.launch.model_copy(update=update)})


def _accelerate(argv: list[str]):
    """accelerate's own reading: (parsed and validated args, the config file's defaults or None)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    at = argv.index("accelerate.commands.launch")
    args = launch_command_parser().parse_args(argv[at + 1:])
    args, defaults, _ = _validate_launch_command(args)
    return args, defaults


def _facts(args) -> dict:
    """What decides the launch accelerate makes: its launcher, process counts, precision, the rendezvous."""
    launcher = ("deepspeed" if args.use_deepspeed else "fsdp" if args.use_fsdp else
                "multi_gpu" if args.multi_gpu and not args.cpu else "simple")
    return {"launcher": launcher, "cpu": bool(args.cpu or getattr(args, "use_cpu", False)),
            "num_processes": int(args.num_processes), "num_machines": int(args.num_machines),
            "mixed_precision": str(args.mixed_precision), "main_process_port": int(args.main_process_port)}


def _command_argv(text: str) -> list[str]:
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert len(lines) == 1, lines
    return shlex.split(lines[0])


def _write_config_file(config: Config, run_dir: Path) -> None:
    """What `tunedeck run` (prepare) writes into the run directory for FSDP/DeepSpeed."""
    sharded = accelerate_config(config, cuda=target_cuda(config))
    if sharded is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "accelerate_config.json").write_text(json.dumps(sharded))


def _sbatch_node_argv(text: str, rank: int, run_dir: Path) -> list[str]:
    """The argv one node runs: the srun line's command, with the variables the node's shell fills in."""
    line = next(line for line in text.splitlines() if line.startswith("srun "))
    inner = shlex.split(line)[-1]
    assert inner.startswith("exec ")
    values = {"SLURM_NODEID": str(rank), "MAIN_PROCESS_IP": ADDRESS, "RUN_DIR": str(run_dir), "PYTHON": "python"}
    expanded = re.sub(r"\$(\w+)", lambda m: values[m.group(1)], inner[len("exec "):])
    return shlex.split(expanded)


CASES = [(name, layout, None) for name in PRESETS for layout in LAYOUTS]
CASES += [("full-small", layout, strategy) for strategy in ("fsdp", "deepspeed") for layout in ("multi-gpu", "multi-node")]


@pytest.mark.parametrize(("name", "layout", "strategy"), CASES)
def test_every_export_is_accepted_by_accelerate_and_they_agree(name: str, layout: str, strategy: str | None,
                                                               tmp_path: Path) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    config = _preset(name, layout, strategy)
    per, machines = LAYOUTS[layout]
    total = per * machines
    cuda = target_cuda(config)
    run_dir = tmp_path / "runs" / "RUN_NAME"

    # What `tunedeck run` starts on the target (the accelerate-cmd export is that argv, for reading).
    run_argv = build_argv(config, run_dir, cuda=cuda, python="python")
    _write_config_file(config, run_dir)
    expected, _ = _accelerate(run_argv)
    facts = _facts(expected)
    # accelerate's --num_processes is the total over all machines, never the per-machine count.
    assert facts["num_processes"] == total and facts["num_machines"] == machines
    if total == 1:
        assert "--multi_gpu" not in run_argv and facts["launcher"] == "simple"
    elif strategy is None:
        assert facts["launcher"] == "multi_gpu"  # DDP through torchrun, on GPUs or (gloo) on CPUs
    assert facts["cpu"] == (not cuda and total == 1)

    command = _command_argv(export_text(config, "accelerate-cmd", name=name))
    command = [str(run_dir) if word == "runs/RUN_NAME" else word.replace("runs/RUN_NAME", str(run_dir))
               for word in command]
    args, _ = _accelerate(command)
    assert _facts(args) == facts
    if machines > 1:
        assert args.main_process_ip == ADDRESS

    yaml_file = tmp_path / "accelerate.yaml"
    yaml_file.write_text(export_text(config, "accelerate-yaml", name=name))
    loaded = load_config_from_file(str(yaml_file))  # accelerate's loader
    assert loaded.num_processes == total and loaded.num_machines == machines
    assert str(loaded.distributed_type).split(".")[-1] == {
        "fsdp": "FSDP", "deepspeed": "DEEPSPEED"}.get(strategy or "", "MULTI_GPU" if total > 1 else "NO")
    from_file, defaults = _accelerate(["python", "-m", "accelerate.commands.launch", "--config_file", str(yaml_file),
                                       "-m", "runner.train", str(run_dir)])
    assert defaults is not None and _facts(from_file) == facts

    script = export_text(config, "sbatch", name=name)
    assert f"#SBATCH --nodes={machines}" in script
    assert ("#SBATCH --gres=gpu:" in script) == cuda
    for rank in range(machines):
        node_argv = _sbatch_node_argv(script, rank, run_dir)
        args, _ = _accelerate(node_argv)
        assert _facts(args) == facts
        assert int(args.machine_rank) == rank
        if machines > 1:
            assert args.main_process_ip == ADDRESS  # from the allocation, not the preset
        assert node_argv[node_argv.index("-m", 3):] == ["-m", "runner.train", str(run_dir)]


@pytest.mark.parametrize("name", PRESETS)
def test_multi_node_sbatch_needs_no_address_but_the_accelerate_formats_ask(name: str) -> None:
    from runner.validate import check

    config = _preset(name, "multi-node")
    config = config.model_copy(update={"launch": config.launch.model_copy(update={"main_process_ip": ""})})
    assert not [p for p in check(config) if p.is_error]  # the preset is fine without an address
    script = export_text(config, "sbatch", name=name)
    assert '--main_process_ip "$MAIN_PROCESS_IP"' in script and "scontrol show hostnames" in script
    from runner.problems import ConfigError

    for fmt in ("accelerate-cmd", "accelerate-yaml"):
        with pytest.raises(ConfigError, match="main node's address"):
            export_text(config, fmt, name=name)


def test_readme_example_exports_four_nodes_without_an_address(tmp_path: Path) -> None:
    import subprocess
    import sys

    from conftest import ROOT, python_env

    out = tmp_path / "job.sbatch"
    done = subprocess.run([sys.executable, "-m", "runner.cli", "export", "qlora-8b", "--to", "sbatch",
                           "--set", "launch.num_machines=4", "-o", str(out)],
                          capture_output=True, text=True, env=python_env(), cwd=ROOT)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert "#SBATCH --nodes=4" in text and "--num_processes 4 " in text and "--multi_gpu" in text
    asked = subprocess.run([sys.executable, "-m", "runner.cli", "export", "qlora-8b", "--to", "accelerate-cmd",
                            "--set", "launch.num_machines=4"], capture_output=True, text=True, env=python_env(),
                           cwd=ROOT)
    assert asked.returncode == 1 and "main_process_ip" in asked.stderr and "Traceback" not in asked.stderr


@pytest.mark.parametrize("name", ("qlora-8b", "full-small", "qlora-70b", "pretrain-gpt", "lora-1b"))
def test_gpu_presets_export_gpu_launches_on_a_machine_without_a_gpu(name: str) -> None:
    """This test machine has no GPU: the exports still describe the GPUs the preset targets."""
    config = presets.require(name).config
    assert target_cuda(config)
    command = export_text(config, "accelerate-cmd", name=name)
    assert "--cpu" not in command and "# Target: CUDA GPUs" in command
    precision = "bf16" if config.training.bf16 else "fp16" if config.training.fp16 else "no"
    assert f"--mixed_precision {precision}" in command
    yaml_text = export_text(config, "accelerate-yaml", name=name)
    assert "use_cpu: false" in yaml_text and f"mixed_precision: {precision}" in yaml_text
    assert "#SBATCH --gres=gpu:" in export_text(config, "sbatch", name=name)


def test_device_cpu_and_cuda_say_it_outright() -> None:
    demo = presets.require("demo").config
    assert not target_cuda(demo)  # no GPU setting: the CPU
    assert "--cpu" in export_text(demo, "accelerate-cmd", name="demo")
    as_gpu = presets.require("demo", ["launch.device=\"cuda\""]).config
    assert target_cuda(as_gpu) and "--cpu" not in export_text(as_gpu, "accelerate-cmd", name="demo")
    refused = presets.load("qlora-8b", ["launch.device=\"cpu\""])
    keys = {p.key for p in refused.errors}
    assert {"training.fp16", "quantization.load_in_4bit", "training.optim"} <= keys
    assert all("launch.device is 'cpu'" in p.message for p in refused.errors)


def test_exports_leave_out_architecture_fields_of_a_pretrained_model() -> None:
    from runner.export.block import preset_toml

    text = preset_toml(presets.require("qlora-8b").config)
    assert "num_hidden_layers" not in text and "hidden_size" not in text
    scratch = preset_toml(presets.require("pretrain-gpt").config)
    assert "num_hidden_layers = 24" in scratch  # from scratch: they are the model


def test_validate_passes_a_gpu_preset_and_only_here_and_run_here_fail_on_this_machine(tmp_path: Path) -> None:
    import subprocess
    import sys

    from conftest import ROOT, python_env
    from runner.gpu import probe

    if probe().available:
        pytest.skip("this machine has a GPU: nothing it lacks to report")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "runner.cli", *args], capture_output=True, text=True,
                              env=python_env(), cwd=tmp_path, timeout=120)

    plain = cli("validate", "qlora-8b")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    here = cli("validate", "--here", "qlora-8b")
    assert here.returncode == 1 and "fp16 mixed precision needs a CUDA GPU" in here.stderr
    assert "load_in_4bit" in here.stderr and "paged_adamw_8bit" in here.stderr
    run = cli("run", "qlora-8b", "--detach", "--runs-dir", str(tmp_path / "runs"))
    assert run.returncode == 2 and "not launching qlora-8b here" in run.stderr
    assert not (tmp_path / "runs").exists()
