"""The `accelerate launch` command, its config file and the run's environment, for each kind of
machine a user prepares a run on (written from the mutation benchmark's survivors in runner/launch.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.launch import accelerate_config, build_argv, is_secret, run_env
from runner.schema import Config


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def config(launch: dict | None = None, **training: object) -> Config:
    return Config.model_validate({"launch": launch or {}, "training": training})


@pytest.mark.parametrize("name", ["HF_TOKEN", "wandb_api_key", "AWS_SECRET_ACCESS_KEY", "db_password", "MyKey"])
def test_secret_names(name: str) -> None:
    assert is_secret(name)


@pytest.mark.parametrize("name", ["PATH", "HOME", "CUDA_VISIBLE_DEVICES", "HF_HOME"])
def test_ordinary_names(name: str) -> None:
    assert not is_secret(name)


def test_one_cpu_process_runs_with_cpu_flag_and_the_trainer_last(tmp_path: Path) -> None:
    argv = build_argv(config(), tmp_path, cuda=False, python="/opt/py")
    assert argv[:3] == ["/opt/py", "-m", "accelerate.commands.launch"] and "--cpu" in argv
    assert "--multi_gpu" not in argv and "--config_file" not in argv
    assert argv[-3:] == ["-m", "runner.train", str(tmp_path)]
    assert flag(argv, "--dynamo_backend") == "no" and flag(argv, "--main_process_port") == "29500"
    assert "--main_process_ip" not in argv


def test_one_gpu_process_has_neither_cpu_nor_multi_gpu(tmp_path: Path) -> None:
    argv = build_argv(config(), tmp_path, cuda=True)
    assert "--cpu" not in argv and "--multi_gpu" not in argv


def test_resume_is_the_very_last_argument(tmp_path: Path) -> None:
    argv = build_argv(config(), tmp_path, cuda=False, resume=True)
    assert argv[-1] == "--resume" and argv[-2] == str(tmp_path)
    assert "--resume" not in build_argv(config(), tmp_path, cuda=False)


@pytest.mark.parametrize("strategy", ["fsdp", "deepspeed"])
def test_sharded_strategies_go_through_the_config_file(tmp_path: Path, strategy: str) -> None:
    argv = build_argv(config({"strategy": strategy, "num_processes": 2}), tmp_path, cuda=True)
    assert Path(flag(argv, "--config_file")).parent == tmp_path and "--multi_gpu" not in argv


@pytest.mark.parametrize(
    ("training", "mixed", "on_gpu", "on_cpu"),
    [
        ({"bf16": True}, "auto", "bf16", "bf16"),
        ({"fp16": True}, "auto", "fp16", "no"),  # CPUs get no fp16 autocast
        ({}, "auto", "no", "no"),
        ({"bf16": True}, "bf16", "bf16", "bf16"),
        ({}, "no", "no", "no"),
    ],
)
def test_mixed_precision_flag(tmp_path: Path, training: dict, mixed: str, on_gpu: str, on_cpu: str) -> None:
    c = config({"mixed_precision": mixed}, **training)
    assert flag(build_argv(c, tmp_path, cuda=True), "--mixed_precision") == on_gpu
    assert flag(build_argv(c, tmp_path, cuda=False), "--mixed_precision") == on_cpu


def test_gpu_ids_only_on_gpus_and_only_when_not_all(tmp_path: Path) -> None:
    c = config({"gpu_ids": " 0,1 ", "num_processes": 2})
    assert flag(build_argv(c, tmp_path, cuda=True), "--gpu_ids") == "0,1"
    assert "--gpu_ids" not in build_argv(c, tmp_path, cuda=False)
    assert "--gpu_ids" not in build_argv(config({"gpu_ids": "all"}), tmp_path, cuda=True)


def test_no_config_file_without_sharding() -> None:
    assert accelerate_config(config({"num_processes": 2}), cuda=True) is None


def test_fsdp_config_file_for_two_machines() -> None:
    c = config({"strategy": "fsdp", "num_processes": 4, "num_machines": 2, "machine_rank": 1,
                "main_process_ip": "10.0.0.1", "gpu_ids": "0,1,2,3"}, bf16=True, gradient_checkpointing=True)
    data = accelerate_config(c, cuda=True)
    assert data["distributed_type"] == "FSDP" and data["num_processes"] == 8 and data["num_machines"] == 2
    assert data["machine_rank"] == 1 and data["main_process_ip"] == "10.0.0.1" and data["gpu_ids"] == "0,1,2,3"
    assert data["mixed_precision"] == "bf16" and data["use_cpu"] is False
    assert data["fsdp_config"]["fsdp_activation_checkpointing"] is True
    assert data["fsdp_config"]["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    on_cpu = accelerate_config(config({"strategy": "fsdp", "num_processes": 2, "gpu_ids": "0,1"}), cuda=False)
    assert on_cpu["use_cpu"] is True and "gpu_ids" not in on_cpu and "main_process_ip" not in on_cpu


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_config_file(stage: int) -> None:
    c = config({"strategy": "deepspeed", "zero_stage": stage, "num_processes": 2},
               gradient_accumulation_steps=4, max_grad_norm=0.5)
    ds = accelerate_config(c, cuda=True)["deepspeed_config"]
    assert ds["zero_stage"] == stage and ds["gradient_accumulation_steps"] == 4 and ds["gradient_clipping"] == 0.5
    assert ds["zero3_init_flag"] is (stage == 3) and ds["zero3_save_16bit_model"] is (stage == 3)


def test_run_env_puts_this_checkout_first_and_names_what_it_set() -> None:
    env, names = run_env({"PYTHONPATH": "/elsewhere", "HOME": "/home/u"})
    root = str(Path(__file__).resolve().parent.parent)
    assert env["PYTHONPATH"].split(":")[0] == str(Path(root).resolve()) and env["PYTHONPATH"].endswith("/elsewhere")
    assert env["TOKENIZERS_PARALLELISM"] == "false" and env["PYTHONUNBUFFERED"] == "1" and env["HOME"] == "/home/u"
    assert "PYTHONPATH" in names and "TOKENIZERS_PARALLELISM" in names and "HOME" not in names
    alone, _ = run_env({})
    assert alone["PYTHONPATH"] == str(Path(root).resolve())
