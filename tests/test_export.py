"""`tunedeck export`: every format, and `tunedeck import` of each export gives back the same config."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, python_env
from runner import presets
from runner.convert import import_file, write_preset
from runner.export import FORMATS, SUFFIXES, export_text
from runner.launch import build_argv
from runner.training_args import training_arguments

PRESETS = ("demo", "lora-1b", "qlora-8b", "full-small", "qlora-70b", "pretrain-gpt")
TEXT_FORMATS = ("accelerate-cmd", "accelerate-yaml", "sbatch", "script")


def _config(name: str):
    return presets.require(name).config


def _round_trip(config, fmt: str, tmp_path: Path, name: str = "x"):
    source = tmp_path / f"{name}{SUFFIXES[fmt]}"
    source.write_text(export_text(config, fmt, name=name))
    imported = import_file(source)
    target = tmp_path / f"{name}-back.toml"
    write_preset(imported, source, target)
    back = presets.load(target)
    assert back.ok, [p.format() for p in back.problems]
    return back.config, imported


def _sections(config) -> dict:
    return config.model_dump(exclude={"description", "extends"})


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
@pytest.mark.parametrize("name", PRESETS)
def test_text_exports_round_trip_to_the_same_config(name: str, fmt: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(name)
    if fmt == "script" and name == "demo":
        # The script carries real paths for the demo model; keep this test free of the model build.
        monkeypatch.setattr("runner.export.script.demo_paths", lambda: ("/models/tiny", "/data/demo.jsonl"))
    back, imported = _round_trip(config, fmt, tmp_path)
    assert _sections(back) == _sections(config)
    assert imported.unmapped == []


@pytest.mark.parametrize("name", PRESETS)
def test_training_args_json_round_trips_the_training_section(name: str, tmp_path: Path) -> None:
    config = _config(name)
    back, imported = _round_trip(config, "training-args", tmp_path)
    expected = config.training.model_dump()
    got = back.training.model_dump()
    # TrainingArguments has no early stopping (a callback) and no tunedeck runs directory.
    for key in ("early_stopping_patience", "early_stopping_threshold", "output_dir"):
        expected.pop(key), got.pop(key)
    if not (config.data.eval_path or config.data.eval_split > 0):
        expected.pop("eval_strategy"), got.pop("eval_strategy")  # without eval data the run never evaluates
    if not (config.training.load_best_model_at_end or config.training.early_stopping_patience
            or config.training.save_strategy == "best"):
        expected.pop("metric_for_best_model"), got.pop("metric_for_best_model")  # unused, so not written
    assert got == expected
    # Arguments tunedeck fixes for every run are reported, with a reason, not silently dropped.
    reasons = {u.key: u.reason for u in imported.unmapped}
    assert "use_cpu" in reasons and reasons["use_cpu"]


def test_training_args_json_is_what_transformers_accepts(tmp_path: Path) -> None:
    from transformers import TrainingArguments

    config = _config("demo")
    data = json.loads(export_text(config, "training-args", name="demo", device="cpu"))
    assert data == training_arguments(config, output_dir="runs/demo/checkpoints", run_name="demo", cuda=False,
                                      has_eval=True)
    data["output_dir"] = str(tmp_path)
    args = TrainingArguments(**data)
    assert args.learning_rate == config.training.learning_rate
    assert args.eval_strategy == "steps" and args.use_cpu


def test_accelerate_cmd_is_the_launchers_argv() -> None:
    config = _config("lora-1b")
    text = export_text(config, "accelerate-cmd", name="lora-1b", device="cuda")
    command = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(command) == 1
    assert shlex.split(command[0]) == build_argv(config, "runs/RUN_NAME", cuda=True, python="python")


def test_accelerate_yaml_is_read_by_accelerate(tmp_path: Path) -> None:
    from accelerate.commands.config.config_args import ClusterConfig

    base = _config("full-small")
    cases = {"NO": base, "MULTI_GPU": _config("pretrain-gpt")}
    for strategy in ("fsdp", "deepspeed"):
        launch = base.launch.model_copy(update={"strategy": strategy, "num_processes": 4, "zero_stage": 3})
        cases[strategy.upper()] = base.model_copy(update={"launch": launch})
    for expected, config in cases.items():
        path = tmp_path / f"{expected}.yaml"
        path.write_text(export_text(config, "accelerate-yaml", name=expected))
        loaded = ClusterConfig.from_yaml_file(str(path))
        assert str(loaded.distributed_type).split(".")[-1] == expected
        assert loaded.num_processes == config.launch.num_processes * config.launch.num_machines
        assert loaded.main_process_port == config.launch.main_process_port
        if expected == "DEEPSPEED":
            assert loaded.deepspeed_config["zero_stage"] == 3
        back = import_file(path)  # and back: the same launch section
        write_preset(back, path, tmp_path / "back.toml")
        assert presets.load(tmp_path / "back.toml").config.launch == config.launch


def test_edited_launch_settings_win_over_the_embedded_preset(tmp_path: Path) -> None:
    config = _config("lora-1b")
    yaml_file = tmp_path / "accel.yaml"
    yaml_file.write_text(export_text(config, "accelerate-yaml", name="x", device="cuda")
                         .replace("num_processes: 1", "num_processes: 4").replace("main_process_port: 29500",
                                                                                   "main_process_port: 29611"))
    imported = import_file(yaml_file)
    assert imported.raw["launch"]["num_processes"] == 4 and imported.raw["launch"]["main_process_port"] == 29611
    assert any("launch.num_processes" in note for note in imported.notes)

    sbatch = tmp_path / "job.sbatch"
    sbatch.write_text(export_text(config, "sbatch", name="x").replace("--nodes=1", "--nodes=4")
                      .replace("--gres=gpu:1", "--gres=gpu:8"))
    imported = import_file(sbatch)
    assert imported.raw["launch"]["num_machines"] == 4 and imported.raw["launch"]["num_processes"] == 8


def test_plain_accelerate_config_imports_launch_and_reports_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "default_config.yaml"
    path.write_text(
        "compute_environment: LOCAL_MACHINE\ndistributed_type: DEEPSPEED\ndeepspeed_config:\n  zero_stage: 3\n"
        "  offload_optimizer_device: cpu\nmixed_precision: bf16\nnum_machines: 2\nnum_processes: 16\n"
        "machine_rank: 0\nmain_process_ip: 10.0.0.1\nmain_process_port: 29400\nmegatron_lm_config: {}\n"
        "tpu_env: []\n")
    imported = import_file(path)
    assert imported.raw["launch"] == {"num_machines": 2, "num_processes": 8, "machine_rank": 0,
                                      "main_process_port": 29400, "main_process_ip": "10.0.0.1",
                                      "mixed_precision": "auto", "strategy": "deepspeed", "zero_stage": 3}
    assert imported.raw["training"] == {"bf16": True, "fp16": False}  # the trainer's switch, consistent
    unmapped = {u.key for u in imported.unmapped}
    assert {"deepspeed_config.offload_optimizer_device", "megatron_lm_config", "compute_environment"} <= unmapped
    out = tmp_path / "p.toml"
    write_preset(imported, path, out)
    assert "megatron_lm_config" in out.read_text()  # kept as a comment
    assert presets.load(out).ok


def test_sbatch_script_is_valid_bash_and_launches_one_task_per_node(tmp_path: Path) -> None:
    config = _config("qlora-70b")
    config = config.model_copy(update={"launch": config.launch.model_copy(update={"num_machines": 2,
                                                                                  "num_processes": 4})})
    script = tmp_path / "job.sbatch"
    script.write_text(export_text(config, "sbatch", name="qlora-70b"))
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "#SBATCH --nodes=2" in text and "#SBATCH --ntasks-per-node=1" in text and "#SBATCH --gres=gpu:4" in text

    # Run it for real with stand-ins for the SLURM tools and python: each "node" records its argv.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text('#!/bin/sh\nprintf "node-a\\nnode-b\\n"\n')
    (bin_dir / "srun").write_text('#!/bin/bash\nfor id in 0 1; do SLURM_NODEID=$id "${@:3}"; done\n')
    (bin_dir / "python").write_text('#!/bin/sh\necho "$@" >> "$RUN_DIR/launches.txt"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    run_dir = tmp_path / "run"
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", SLURM_JOB_ID="77", SLURM_NNODES="2",
               SLURM_JOB_NODELIST="node-[a-b]", TUNEDECK_RUN_DIR=str(run_dir))
    subprocess.run(["bash", str(script)], check=True, env=env, cwd=tmp_path)
    launches = (run_dir / "launches.txt").read_text().splitlines()
    assert len(launches) == 2
    for rank, line in enumerate(launches):
        argv = line.split()
        flag = lambda name: argv[argv.index(name) + 1]  # noqa: E731
        assert flag("--num_processes") == "8" and flag("--num_machines") == "2"
        assert flag("--machine_rank") == str(rank) and flag("--main_process_ip") == "node-a"
        assert argv[-2:] == ["runner.train", str(run_dir)]
    written = presets.load(run_dir / "config.toml")  # the run dir holds the preset the job trains
    assert not written.errors, [p.format() for p in written.problems]
    assert _sections(written.config) == _sections(config)  # the address comes from the allocation, not the file
    if config.launch.strategy in ("fsdp", "deepspeed"):
        assert "--config_file" in launches[0] and (run_dir / "accelerate_config.json").is_file()


@pytest.mark.parametrize("name", ("lora-1b", "qlora-8b", "full-small", "pretrain-gpt"))
def test_script_is_standalone_python_with_the_runs_pieces(name: str) -> None:
    config = _config(name)
    text = export_text(config, "script", name=name)
    compile(text, f"{name}.py", "exec")
    code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not any("runner" in line.split("#")[0] or "tunedeck" in line.split("#")[0]
                   for line in code if line.startswith(("import", "from")))
    assert ("get_peft_model" in text) and ("BitsAndBytesConfig" in text)
    assert f"'learning_rate': {config.training.learning_rate!r}" in text


def test_cli_export_writes_files_and_refuses_bad_input(tmp_path: Path) -> None:
    out = tmp_path / "job.sbatch"
    done = subprocess.run([sys.executable, "-m", "runner.cli", "export", "lora-1b", "--to", "sbatch", "-o", str(out),
                           "--set", "launch.num_machines=3", "--set", "launch.main_process_ip=\"10.1.1.1\""],
                          capture_output=True, text=True, env=python_env(), cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "#SBATCH --nodes=3" in out.read_text() and os.access(out, os.X_OK)
    shown = subprocess.run([sys.executable, "-m", "runner.cli", "export", "demo", "--to", "accelerate-cmd",
                            "--device", "cpu"], capture_output=True, text=True, env=python_env(), cwd=ROOT)
    assert shown.returncode == 0 and "--cpu" in shown.stdout
    bad = subprocess.run([sys.executable, "-m", "runner.cli", "export", "no-such-preset", "--to", "script"],
                         capture_output=True, text=True, env=python_env(), cwd=ROOT)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "no-such-preset" in bad.stderr
    wrong = subprocess.run([sys.executable, "-m", "runner.cli", "export", "demo", "--to", "yaml"],
                           capture_output=True, text=True, env=python_env(), cwd=ROOT)
    assert wrong.returncode == 2 and "accelerate-yaml" in wrong.stderr


def test_export_command_imports_no_heavy_module() -> None:
    from conftest import imported_heavy_modules

    code = ("from runner import presets; from runner.export import export_text\n"
            "c = presets.require('lora-1b').config\n"
            "[export_text(c, f, name='x') for f in ('accelerate-cmd', 'accelerate-yaml', 'training-args', 'script', "
            "'sbatch')]")
    assert imported_heavy_modules(code) == []


@pytest.mark.slow
def test_exported_demo_script_trains_without_tunedeck(tmp_path: Path) -> None:
    script = tmp_path / "train_demo.py"
    done = subprocess.run([sys.executable, "-m", "runner.cli", "export", "demo", "--to", "script", "-o", str(script)],
                          capture_output=True, text=True, env=python_env(), cwd=ROOT)
    assert done.returncode == 0, done.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # -I: isolated mode, so neither the checkout nor PYTHONPATH is on sys.path.
    # The venv may hold tunedeck (editable install), so make importing it fail outright, then run the script.
    runner_code = (
        "import importlib.abc, runpy, sys\n"
        "class NoTunedeck(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('runner', 'tui', 'tunedeck'):\n"
        "            raise ImportError(f'{name} is blocked: the script must not need tunedeck')\n"
        "sys.meta_path.insert(0, NoTunedeck())\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    run = subprocess.run([sys.executable, "-I", "-c", runner_code, str(script), "--max-steps", "3",
                          "--output-dir", str(work / "out")],
                         capture_output=True, text=True, cwd=work, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    final = work / "out" / "final"
    assert (final / "model.safetensors").is_file() and (final / "tokenizer.json").is_file()
    assert (work / "out" / "checkpoints" / "checkpoint-3" / "trainer_state.json").is_file()
