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


def test_deepspeed_on_two_machines_writes_exactly_what_accelerate_needs() -> None:
    c = config({"strategy": "deepspeed", "zero_stage": 2, "num_processes": 4, "num_machines": 2, "machine_rank": 1,
                "main_process_ip": "10.0.0.1", "main_process_port": 29612, "gpu_ids": " 0,1,2,3 "},
               bf16=True, gradient_accumulation_steps=8, max_grad_norm=1.5)
    assert accelerate_config(c, cuda=True) == {
        "compute_environment": "LOCAL_MACHINE", "debug": False, "mixed_precision": "bf16",
        "num_machines": 2, "num_processes": 8,  # accelerate's total over both machines: the world size
        "machine_rank": 1, "main_process_port": 29612, "main_process_ip": "10.0.0.1", "gpu_ids": "0,1,2,3",
        "rdzv_backend": "static", "same_network": True, "use_cpu": False, "downcast_bf16": "no",
        "distributed_type": "DEEPSPEED",
        "deepspeed_config": {"zero_stage": 2, "gradient_accumulation_steps": 8, "gradient_clipping": 1.5,
                             "offload_optimizer_device": "none", "offload_param_device": "none",
                             "zero3_init_flag": False, "zero3_save_16bit_model": False},
    }


@pytest.mark.parametrize("stage", [2, 3])
def test_a_users_own_deepspeed_file_is_named_and_nothing_it_sets_is_repeated(tmp_path: Path, monkeypatch,
                                                                              stage: int) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    c = config({"strategy": "deepspeed", "zero_stage": stage, "num_processes": 2, "deepspeed_config": " ~/ds.json "})
    data = accelerate_config(c, cuda=True)
    assert data["distributed_type"] == "DEEPSPEED"
    # accelerate refuses zero_stage, clipping and the like beside a DeepSpeed file of the user's
    assert data["deepspeed_config"] == {"deepspeed_config_file": str((tmp_path / "ds.json").resolve()),
                                        "zero3_init_flag": stage == 3}


@pytest.mark.parametrize(("training", "on_gpu", "on_cpu"), [({"fp16": True}, "fp16", "no"), ({"bf16": True}, "bf16", "bf16")])
def test_the_config_file_has_the_precision_of_the_target(training: dict, on_gpu: str, on_cpu: str) -> None:
    c = config({"strategy": "fsdp", "num_processes": 2}, **training)
    assert accelerate_config(c, cuda=True)["mixed_precision"] == on_gpu
    assert accelerate_config(c, cuda=False)["mixed_precision"] == on_cpu  # CPUs get no fp16 autocast


def test_a_blank_deepspeed_file_setting_means_the_built_in_config() -> None:
    ds = accelerate_config(config({"strategy": "deepspeed", "zero_stage": 3, "deepspeed_config": "   "}),
                           cuda=True)["deepspeed_config"]
    assert ds["zero_stage"] == 3 and "deepspeed_config_file" not in ds


def test_fsdp_shards_every_decoder_block_and_follows_gradient_checkpointing() -> None:
    fsdp = accelerate_config(config({"strategy": "fsdp", "num_processes": 2}, gradient_checkpointing=False),
                             cuda=True)["fsdp_config"]
    assert fsdp == {"fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                    "fsdp_reshard_after_forward": True, "fsdp_offload_params": False,
                    "fsdp_state_dict_type": "SHARDED_STATE_DICT", "fsdp_cpu_ram_efficient_loading": True,
                    "fsdp_activation_checkpointing": False}


def test_command_json_records_names_of_secrets_never_values(tmp_path: Path, monkeypatch) -> None:
    import json
    import socket
    import sys
    import time

    from runner.launch import write_command
    from runner.rundir import RunDir

    monkeypatch.setenv("WANDB_API_KEY", "wandb-secret-value")
    monkeypatch.setenv("MY_DB_PASSWORD", "hunter2")
    run = RunDir(tmp_path)
    before = time.time()
    write_command(run, ["python", "-m", "x"], ["PYTHONPATH"], "/work", resumed=12.5)
    text = run.command.read_text()
    record = json.loads(text)
    assert "wandb-secret-value" not in text and "hunter2" not in text
    assert {"WANDB_API_KEY", "MY_DB_PASSWORD"} <= set(record["secret_env_inherited"])
    assert record["secret_env_inherited"] == sorted(record["secret_env_inherited"])
    assert "PATH" not in record["secret_env_inherited"]
    assert record["argv"] == ["python", "-m", "x"] and record["cwd"] == "/work" and record["env_set"] == ["PYTHONPATH"]
    assert record["python"] == sys.executable and record["host"] == socket.gethostname()
    assert before <= record["created"] <= time.time() and record["resumed"] == 12.5
    assert text.endswith("}\n") and '\n  "argv": [\n' in text  # for people: one key per line


def test_every_run_gets_the_fixed_environment() -> None:
    env, names = run_env({"TOKENIZERS_PARALLELISM": "true"})
    assert env["TOKENIZERS_PARALLELISM"] == "false"  # the run's value wins over the caller's
    assert env["HF_HUB_DISABLE_TELEMETRY"] == "1" and env["ACCELERATE_DISABLE_RICH"] == "1"
    assert env["PYTHONSAFEPATH"] == "1"  # a runner/ folder in the working directory is never imported
    assert env["PYTHONUNBUFFERED"] == "1"  # output.log follows progress live
    assert names == ["ACCELERATE_DISABLE_RICH", "HF_HUB_DISABLE_TELEMETRY", "PYTHONPATH", "PYTHONSAFEPATH",
                     "PYTHONUNBUFFERED", "TOKENIZERS_PARALLELISM"]  # names only: the values are fixed
