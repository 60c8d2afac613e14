"""Every export, parsed the way its reader parses it (YAML, JSON, shell words, #SBATCH lines, Python
literals), field by field: what a user launching from the exported file relies on. In-process and fast,
beside the round-trip and accelerate-acceptance tests (tests/test_export.py, test_export_accepted.py)."""

from __future__ import annotations

import ast
import json
import re
import shlex
import tomllib

import pytest
import yaml

from runner import presets
from runner.export import block, export_text, sbatch
from runner.export.accelerate import RUN_DIR_PLACEHOLDER, accelerate_yaml_dict
from runner.export.script import standalone_script
from runner.launch import accelerate_config, build_argv
from runner.problems import ConfigError
from runner.schema import Config
from runner.target import describe
from runner.training_args import training_arguments

ADDRESS = "10.0.0.7"


def _preset(name: str = "full-small", **launch) -> Config:
    config = presets.require(name).config
    return config.model_copy(update={"launch": config.launch.model_copy(update=launch)})


def _multi(name: str = "full-small", per: int = 4, machines: int = 2, **launch) -> Config:
    return _preset(name, num_processes=per, num_machines=machines, main_process_ip=ADDRESS if machines > 1 else "",
                   **launch)


def _comments(text: str) -> list[str]:
    """The leading comment lines of an export, before its embedded preset."""
    out = []
    for line in text.splitlines():
        if block.BEGIN in line:
            break
        out.append(line)
    return out


def _embedded(text: str) -> dict:
    found = block.extract(text)
    assert found is not None
    return tomllib.loads(found[0])


def _argv_of(text: str) -> list[str]:
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert len(lines) == 1, lines
    return shlex.split(lines[0])


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


# ---- export_text: which hardware, which format ----------------------------------------------------------
def test_unknown_format_names_the_formats() -> None:
    with pytest.raises(ValueError) as err:
        export_text(_preset(), "yaml", name="x")
    assert str(err.value) == ("unknown export format 'yaml'; one of accelerate-cmd, accelerate-yaml, training-args, "
                              "script, sbatch")


@pytest.mark.parametrize("cuda,device", [(True, "cuda"), (False, "cpu")])
def test_cuda_flag_sets_the_target_device(cuda: bool, device: str) -> None:
    config = _preset("lora-1b")  # device "auto", bf16: a GPU preset
    text = export_text(config, "accelerate-cmd", name="x", cuda=cuda)
    assert _embedded(text)["launch"]["device"] == device
    assert ("--cpu" in _argv_of(text)) is (not cuda)
    assert f"# Target: {'CUDA GPUs' if cuda else 'CPU'} (launch.device = {device!r})" in text


def test_explicit_device_wins_over_the_cuda_flag() -> None:
    text = export_text(_preset("lora-1b"), "accelerate-yaml", name="x", device="cpu", cuda=True)
    assert yaml.safe_load(text)["use_cpu"] is True
    assert _embedded(text)["launch"]["device"] == "cpu"


def test_no_override_keeps_the_presets_device() -> None:
    text = export_text(_preset("lora-1b"), "accelerate-yaml", name="x")
    assert _embedded(text)["launch"]["device"] == "auto"
    assert yaml.safe_load(text)["use_cpu"] is False  # bf16 in an auto preset targets a GPU


def test_every_format_is_built_for_its_name() -> None:
    config = _preset("lora-1b")
    assert export_text(config, "accelerate-cmd", name="n1").startswith("# `accelerate launch` for preset 'n1'")
    assert export_text(config, "accelerate-yaml", name="n2").startswith("# accelerate config for preset 'n2'")
    assert json.loads(export_text(config, "training-args", name="n3"))["run_name"] == "n3"
    assert "Fine-tune n4:" in export_text(config, "script", name="n4")
    assert "#SBATCH --job-name=n5\n" in export_text(config, "sbatch", name="n5")


def test_exports_are_self_contained_without_extends() -> None:
    config = _preset("lora-1b").model_copy(update={"extends": "full-small"})
    for fmt in ("accelerate-cmd", "accelerate-yaml", "script", "sbatch"):
        assert "extends" not in _embedded(export_text(config, fmt, name="x")), fmt


# ---- the accelerate command --------------------------------------------------------------------------
def test_accelerate_cmd_header_argv_and_preset() -> None:
    config = _multi("lora-1b", per=4, machines=2, machine_rank=1)
    text = export_text(config, "accelerate-cmd", name="lora-1b", device="cuda")
    assert _comments(text) == [
        "# `accelerate launch` for preset 'lora-1b', as `tunedeck run` starts it.",
        "# Target: CUDA GPUs (launch.device = 'cuda'); machine rank 1 of 2.",
        "# runs/RUN_NAME must hold config.toml (the preset below); tunedeck must be importable.",
    ]
    argv = _argv_of(text)
    cuda_config = config.model_copy(update={"launch": config.launch.model_copy(update={"device": "cuda"})})
    assert argv == build_argv(cuda_config, RUN_DIR_PLACEHOLDER, cuda=True, python="python")
    assert argv[0] == "python" and argv[-1] == "runs/RUN_NAME"
    assert (_flag(argv, "--num_processes"), _flag(argv, "--num_machines"), _flag(argv, "--machine_rank"),
            _flag(argv, "--main_process_ip")) == ("8", "2", "1", ADDRESS)
    assert _embedded(text)["launch"]["num_machines"] == 2


@pytest.mark.parametrize("fmt,what", [("accelerate-cmd", "the accelerate command"),
                                      ("accelerate-yaml", "the accelerate config file")])
def test_multi_node_without_an_address_is_refused(fmt: str, what: str) -> None:
    config = _preset(num_processes=4, num_machines=3, main_process_ip="")
    with pytest.raises(ConfigError) as err:
        export_text(config, fmt, name="x", device="cuda")
    problem = err.value.problems[0]
    assert problem.key == "launch.main_process_ip"
    assert problem.message == f"3 machines need the main node's address for {what}"


# ---- the accelerate config file ---------------------------------------------------------------------
YAML_LAYOUTS = [  # (strategy, per machine, machines, cuda) -> distributed_type, num_processes, use_cpu
    ("none", 1, 1, True, "NO", 1, False),
    ("none", 1, 1, False, "NO", 1, True),
    ("none", 4, 1, True, "MULTI_GPU", 4, False),
    ("none", 4, 1, False, "MULTI_GPU", 4, False),  # several CPU processes start through torchrun
    ("ddp", 2, 1, True, "MULTI_GPU", 2, False),
    ("ddp", 4, 2, True, "MULTI_GPU", 8, False),
    ("ddp", 1, 3, True, "MULTI_GPU", 3, False),
    ("none", 1, 2, False, "MULTI_GPU", 2, False),
    ("fsdp", 4, 1, True, "FSDP", 4, False),
    ("fsdp", 8, 4, True, "FSDP", 32, False),
    ("deepspeed", 4, 1, True, "DEEPSPEED", 4, False),
    ("deepspeed", 8, 2, True, "DEEPSPEED", 16, False),
]


@pytest.mark.parametrize("strategy,per,machines,cuda,distributed,total,use_cpu", YAML_LAYOUTS)
def test_accelerate_yaml_layouts(strategy, per, machines, cuda, distributed, total, use_cpu) -> None:
    config = _multi(per=per, machines=machines, strategy=strategy, machine_rank=machines - 1, zero_stage=3)
    text = export_text(config, "accelerate-yaml", name="x", cuda=cuda)
    data = yaml.safe_load(text)
    assert data["distributed_type"] == distributed  # upper-case, as accelerate's DistributedType spells it
    assert data["num_processes"] == total  # the total over every machine
    assert data["num_machines"] == machines and data["machine_rank"] == machines - 1
    assert data["use_cpu"] is use_cpu
    assert data["compute_environment"] == "LOCAL_MACHINE"
    assert ("main_process_ip" in data) is (machines > 1)
    if machines > 1:
        assert data["main_process_ip"] == ADDRESS
    assert ("fsdp_config" in data) is (strategy == "fsdp")
    assert ("deepspeed_config" in data) is (strategy == "deepspeed")
    if strategy == "deepspeed":
        assert data["deepspeed_config"]["zero_stage"] == 3
    if strategy == "fsdp":
        assert data["fsdp_config"]["fsdp_version"] == 2
    assert data == accelerate_yaml_dict(config.model_copy(update={"launch": config.launch.model_copy(
        update={"device": "cuda" if cuda else "cpu"})}), cuda=cuda)


def test_accelerate_yaml_keeps_the_launchers_key_order_and_header() -> None:
    config = _multi(strategy="fsdp")
    text = export_text(config, "accelerate-yaml", name="big", device="cuda")
    assert _comments(text) == [
        "# accelerate config for preset 'big': accelerate launch --config_file THIS_FILE ...",
        "# Target: CUDA GPUs (launch.device = 'cuda').",
    ]
    data = yaml.safe_load(text)
    assert list(data) == list(accelerate_config(config, cuda=True))
    assert list(data)[:3] == ["compute_environment", "debug", "mixed_precision"]
    assert _embedded(text)["launch"]["strategy"] == "fsdp"


def test_plain_yaml_mixed_precision_follows_the_trainer() -> None:
    bf16 = yaml.safe_load(export_text(_preset("lora-1b"), "accelerate-yaml", name="x", device="cuda"))
    assert bf16["mixed_precision"] == "bf16" and bf16["distributed_type"] == "NO"
    fp16 = _preset("lora-1b")
    fp16 = fp16.model_copy(update={"training": fp16.training.model_copy(update={"bf16": False, "fp16": True})})
    assert yaml.safe_load(export_text(fp16, "accelerate-yaml", name="x", device="cuda"))["mixed_precision"] == "fp16"
    assert _flag(_argv_of(export_text(fp16, "accelerate-cmd", name="x", device="cuda")), "--mixed_precision") == "fp16"
    cpu = yaml.safe_load(export_text(_preset("demo"), "accelerate-yaml", name="x", device="cpu"))
    assert cpu["mixed_precision"] == "no" and cpu["use_cpu"] is True


def test_plain_yaml_dict_asks_no_fsdp_and_leaves_the_config_alone() -> None:
    config = _multi(strategy="ddp")
    data = accelerate_yaml_dict(config, cuda=True)
    assert "fsdp_config" not in data and data["distributed_type"] == "MULTI_GPU"
    assert config.launch.strategy == "ddp"
    sharded = accelerate_yaml_dict(_multi(strategy="fsdp"), cuda=True)
    assert sharded == accelerate_config(_multi(strategy="fsdp"), cuda=True)


# ---- TrainingArguments JSON -------------------------------------------------------------------------
@pytest.mark.parametrize("eval_path,eval_split,has_eval", [("", 0.0, False), ("data/eval.jsonl", 0.0, True),
                                                          ("", 0.1, True)])
def test_training_args_json_fields(eval_path: str, eval_split: float, has_eval: bool) -> None:
    config = _preset("lora-1b")
    config = config.model_copy(update={"data": config.data.model_copy(update={"eval_path": eval_path,
                                                                             "eval_split": eval_split})})
    data = json.loads(export_text(config, "training-args", name="job", cuda=True))
    assert data == training_arguments(config, output_dir="runs/job/checkpoints", run_name="job", cuda=True,
                                      has_eval=has_eval)
    assert data["output_dir"] == "runs/job/checkpoints" and data["run_name"] == "job"
    assert data["learning_rate"] == config.training.learning_rate
    other = training_arguments(config, output_dir="runs/job/checkpoints", run_name="job", cuda=True,
                               has_eval=not has_eval)
    assert data != other  # has_eval really decides something


def test_training_args_json_on_cpu_asks_for_the_cpu() -> None:
    data = json.loads(export_text(_preset("demo"), "training-args", name="d", cuda=False))
    assert data["use_cpu"] is True
    text = export_text(_preset("lora-1b"), "training-args", name="d", cuda=True)
    assert json.loads(text)["use_cpu"] is False and text.endswith("}\n") and text.startswith("{\n  ")


# ---- the embedded preset block ---------------------------------------------------------------------
def test_commented_block_round_trips_with_its_line() -> None:
    config = _preset("lora-1b")
    toml = block.preset_toml(config)
    text = "first\nsecond\n" + block.commented(config)
    assert block.extract(text) == (toml, 3)
    lines = block.commented(config).splitlines()
    assert lines[0] == "# tunedeck-preset begin" and lines[-1] == "# tunedeck-preset end"
    assert "#" in lines and all(line == line.rstrip() for line in lines)  # blank lines lose the trailing space
    assert all(line.startswith("#") for line in lines)


def test_block_with_another_prefix() -> None:
    config = _preset("demo")
    text = "x = 1\n" + block.commented(config, prefix="-- ")
    assert text.splitlines()[1] == "-- tunedeck-preset begin"
    assert block.extract(text) == (block.preset_toml(config), 2)


def test_raw_block_round_trips() -> None:
    config = _preset("qlora-8b")
    raw = block.raw(config)
    assert raw.startswith("# tunedeck-preset begin raw\n") and raw.endswith("\n# tunedeck-preset end\n")
    assert raw.splitlines()[1] == block.preset_toml(config).splitlines()[0]  # plain TOML, no prefix
    assert block.extract("#!/bin/bash\n" + raw) == (block.preset_toml(config).rstrip() + "\n", 2)
    assert block.raw(config, prefix="// ").startswith("// tunedeck-preset begin raw\n")


def test_preset_toml_is_compact_and_resolved() -> None:
    config = _preset("lora-1b").model_copy(update={"extends": "demo"})
    toml = block.preset_toml(config)
    assert toml == presets.dumps(config.model_copy(update={"extends": ""}), with_help=False)
    assert "extends" not in tomllib.loads(toml)
    assert sum(line.startswith("#") for line in toml.splitlines()) <= 3  # no help comments


def test_extract_refuses_what_it_cannot_read() -> None:
    config = _preset("demo")
    good = block.commented(config)
    assert block.extract("no block here\n") is None
    assert block.extract(good.replace("# tunedeck-preset end\n", "")) is None  # never closed
    edited = good.replace("# [model]\n", "[model]\n")  # a line lost its prefix
    assert block.extract(edited) is None
    # the end marker inside a value does not end the block; at the end of a line it does
    inner = "# tunedeck-preset begin\n# a = 'tunedeck-preset end of it'\n# b = 1\n# tunedeck-preset end\n"
    assert block.extract(inner) == ("a = 'tunedeck-preset end of it'\nb = 1\n", 1)
    assert block.extract("# tunedeck-preset begin\n#\n# b = 1\n  # tunedeck-preset end  \n") == ("\nb = 1\n", 1)
    # the raw marker keeps lines as they are, prefix or not
    assert block.extract("# tunedeck-preset begin raw\n# c\nd\n# tunedeck-preset end\n") == ("# c\nd\n", 1)
    # a text with a broken first begin line but a later good block
    assert block.extract("tunedeck-preset begin raw extra\n" + good) == (block.preset_toml(config), 2)


# ---- sbatch ----------------------------------------------------------------------------------------
def _directives(text: str) -> list[str]:
    return [line[len("#SBATCH "):] for line in text.splitlines() if line.startswith("#SBATCH ")]


def _heredoc(text: str, marker: str) -> str:
    m = re.search(rf"<<'{marker}'\n(.*?)\n{marker}\n", text, re.S)
    assert m, marker
    return m.group(1)


def _node_argv(text: str) -> list[str]:
    """The argv inside `srun ... bash -c '...'` (with the shell variables still unexpanded)."""
    line = next(line for line in text.splitlines() if "srun " in line)
    words = shlex.split(line)
    inner = words[words.index("-c") + 1]
    assert inner.startswith("exec ")
    return shlex.split(inner[len("exec "):])


def test_sbatch_multi_node_directives_and_node_argv() -> None:
    config = _multi("full-small", per=4, machines=2, strategy="fsdp", machine_rank=1)
    text = export_text(config, "sbatch", name="big run!", device="cuda")
    assert _directives(text) == ["--job-name=big-run", "--nodes=2", "--ntasks-per-node=1", "--gres=gpu:4",
                                 "--exclusive", "--output=%x-%j.out"]
    assert "# SLURM job for tunedeck preset 'big run!': 2 node(s) x 4 process(es), 8 in all." in text
    assert "# accelerate's --num_processes is the total over all machines (2 x 4)." in text
    argv = _node_argv(text)
    assert argv[:3] == ["$PYTHON", "-m", "accelerate.commands.launch"]
    assert _flag(argv, "--num_processes") == "8" and _flag(argv, "--num_machines") == "2"
    assert _flag(argv, "--machine_rank") == "$SLURM_NODEID"  # each node's own rank, never the preset's
    assert _flag(argv, "--main_process_ip") == "$MAIN_PROCESS_IP"  # the allocation's first node
    assert argv.count("--main_process_ip") == 1
    assert _flag(argv, "--config_file") == "$RUN_DIR/accelerate_config.json"
    assert argv[-3:] == ["-m", "runner.train", "$RUN_DIR"]
    # the accelerate config the job writes: the total process count, rank 0 (overridden per node), no address
    assert "\ncat > \"$RUN_DIR/accelerate_config.json\" <<'TUNEDECK_ACCELERATE'\n" in text
    assert "\ncat > \"$RUN_DIR/config.toml\" <<'TUNEDECK_PRESET'\n" in text
    assert '\nmkdir -p "$RUN_DIR/checkpoints"\n' in text
    accel = json.loads(_heredoc(text, "TUNEDECK_ACCELERATE"))
    assert _heredoc(text, "TUNEDECK_ACCELERATE").startswith('{\n  "compute_environment": "LOCAL_MACHINE",\n')
    assert accel["distributed_type"] == "FSDP" and accel["num_processes"] == 8 and accel["num_machines"] == 2
    assert accel["machine_rank"] == 0 and "main_process_ip" not in accel
    # the preset the job trains: the allocation decides rank and address
    written = tomllib.loads(_heredoc(text, "TUNEDECK_PRESET"))
    assert written["launch"]["machine_rank"] == 0 and written["launch"]["main_process_ip"] == ""
    assert written["launch"]["num_machines"] == 2 and written["launch"]["num_processes"] == 4


def test_sbatch_single_node_plain_strategy() -> None:
    config = _preset("lora-1b")
    text = export_text(config, "sbatch", name="lora-1b", device="cuda")
    argv = _node_argv(text)
    assert "--main_process_ip" not in argv and "--config_file" not in argv
    assert _flag(argv, "--machine_rank") == "$SLURM_NODEID"
    assert "TUNEDECK_ACCELERATE" not in text  # no config file for a plain launch
    assert 'RUN_DIR="${TUNEDECK_RUN_DIR:-$PWD/runs/lora-1b-$SLURM_JOB_ID}"' in text
    assert "PYTHON=python  # or the full path of the environment with tunedeck" in text
    assert text.startswith("#!/bin/bash\n")
    assert 'srun --nodes="$SLURM_NNODES" --ntasks-per-node=1 bash -c ' in text
    assert "runner.slurm settle" not in text


@pytest.mark.parametrize("strategy,zero,distributed", [("deepspeed", 3, "DEEPSPEED"), ("fsdp", 2, "FSDP")])
def test_sbatch_sharded_strategies_write_their_accelerate_config(strategy: str, zero: int, distributed: str) -> None:
    config = _multi(per=8, machines=4, strategy=strategy, zero_stage=zero)
    text = export_text(config, "sbatch", name="x", device="cuda")
    accel = json.loads(_heredoc(text, "TUNEDECK_ACCELERATE"))
    assert accel["distributed_type"] == distributed and accel["num_processes"] == 32
    assert accel["use_cpu"] is False and accel["mixed_precision"] in ("bf16", "fp16")  # a GPU job, from a login node
    if strategy == "deepspeed":
        assert accel["deepspeed_config"]["zero_stage"] == 3
    assert _flag(_node_argv(text), "--num_processes") == "32"
    assert "--gres=gpu:8" in _directives(text)


def test_sbatch_cpu_job_asks_no_gpus() -> None:
    text = export_text(_preset("demo", num_processes=2, num_machines=2), "sbatch", name="cpu", device="cpu")
    directives = _directives(text)
    assert not any(d.startswith("--gres") for d in directives) and "--exclusive" not in directives
    assert "--nodes=2" in directives
    assert _flag(_node_argv(text), "--num_processes") == "4"


def test_sbatch_job_options_and_prepared_run() -> None:
    config = _preset("lora-1b", machine_rank=0)
    options = sbatch.JobOptions(nodes=3, gpus_per_node=2, partition="gpu,debug", time="1-12:00:00", account="proj_1")
    text = sbatch.sbatch_script(config, name="job", run_dir="/shared/runs/my run", python="/opt/env/bin/python",
                                options=options, output="/shared/runs/x/slurm-%j.out", resume=True)
    assert _directives(text) == ["--job-name=job", "--nodes=3", "--ntasks-per-node=1", "--gres=gpu:2", "--exclusive",
                                 "--partition=gpu,debug", "--time=1-12:00:00", "--account=proj_1",
                                 "--output=/shared/runs/x/slurm-%j.out", "--open-mode=append"]
    assert "RUN_DIR='/shared/runs/my run'  # prepared by tunedeck: config.toml, status.json\n" in text
    assert "PYTHON=/opt/env/bin/python\n" in text
    assert "TUNEDECK_PRESET" not in text and "mkdir" not in text  # the run directory exists already
    argv = _node_argv(text)
    assert argv[-1] == "--resume" and _flag(argv, "--num_processes") == "6"
    assert _flag(argv, "--main_process_ip") == "$MAIN_PROCESS_IP"
    lines = text.splitlines()
    srun = next(i for i, line in enumerate(lines) if line.startswith("srun "))
    assert lines[srun - 1] == "code=0" and lines[srun].endswith(" || code=$?")
    assert lines[srun].startswith('srun --nodes="$SLURM_NNODES" --ntasks-per-node=1 bash -c ')
    assert lines[srun + 1:] == ["# Record an end the trainers could not (a crash, a kill); its status is the job's.",
                                'exec "$PYTHON" -m runner.slurm settle "$RUN_DIR" "$code"']
    assert sum(line.startswith("srun ") for line in lines) == 1


def test_sbatch_job_name_is_cleaned() -> None:
    assert "#SBATCH --job-name=tunedeck\n" in sbatch.sbatch_script(_preset("lora-1b"), name="!!!")
    assert "#SBATCH --job-name=a.b_c-1\n" in sbatch.sbatch_script(_preset("lora-1b"), name="-a.b_c 1-")
    assert "#SBATCH --job-name=Llama-8B_v2\n" in sbatch.sbatch_script(_preset("lora-1b"), name="Llama 8B_v2")


def test_with_options_puts_the_allocation_first() -> None:
    config = _multi(per=4, machines=2, machine_rank=1)
    same = sbatch.with_options(config, sbatch.JobOptions())
    assert (same.launch.num_machines, same.launch.num_processes) == (2, 4)
    assert (same.launch.machine_rank, same.launch.main_process_ip) == (0, "")
    changed = sbatch.with_options(config, sbatch.JobOptions(nodes=5))
    assert (changed.launch.num_machines, changed.launch.num_processes) == (5, 4)
    changed = sbatch.with_options(config, sbatch.JobOptions(gpus_per_node=8))
    assert (changed.launch.num_machines, changed.launch.num_processes) == (2, 8)
    assert config.launch.machine_rank == 1  # the preset itself is untouched


@pytest.mark.parametrize("value", ["30", "30:00", "12:00:00", "1-12", "1-12:00", "2-00:00:00", "100:00:00"])
def test_slurm_times_accepted(value: str) -> None:
    assert sbatch.check_time(value) == value


@pytest.mark.parametrize("value", ["", "1h", "12:0", "1-", "12:00:00:00", "1000:00", "-12", "1:2:3", "12:00\n"])
def test_slurm_times_refused(value: str) -> None:
    with pytest.raises(ValueError) as err:
        sbatch.check_time(value)
    assert str(err.value) == f"--time {value!r} is not a SLURM time (use HH:MM:SS, MM or D-HH:MM:SS)"


@pytest.mark.parametrize("value", ["gpu", "gpu,debug", "a.b_c-d", "x:y@z+w=1"])
def test_slurm_names_accepted(value: str) -> None:
    assert sbatch.check_name(value, "partition") == value


@pytest.mark.parametrize("value", ["", "a b", "a'b", "gpu\n#SBATCH --x", 'a"b', "a;b", "gpu\n"])
def test_slurm_names_refused(value: str) -> None:
    with pytest.raises(ValueError) as err:
        sbatch.check_name(value, "account")
    assert str(err.value) == (f"--account {value!r} is not a SLURM account name (letters, digits and . _ - , only)")


def test_directive_paths() -> None:
    assert sbatch.check_directive_path("/scratch/runs/a_b-1/slurm-%j.out") == "/scratch/runs/a_b-1/slurm-%j.out"
    for bad in ("/my runs/x.out", "/x'y", "/x\n#SBATCH --y", "", "/x.out\n"):
        with pytest.raises(ValueError) as err:
            sbatch.check_directive_path(bad)
        assert str(err.value).startswith(f"{bad!r} cannot go on an #SBATCH line (no spaces, quotes")
        assert str(err.value).endswith("use a runs directory with a plain path")
    with pytest.raises(ValueError):
        sbatch.sbatch_script(_preset("lora-1b"), name="x", output="/my runs/x.out")
    with pytest.raises(ValueError, match="^--partition 'a b' is not a SLURM partition name "):
        sbatch.sbatch_script(_preset("lora-1b"), name="x", options=sbatch.JobOptions(partition="a b"))
    with pytest.raises(ValueError, match="^--account 'a b' is not a SLURM account name "):
        sbatch.sbatch_script(_preset("lora-1b"), name="x", options=sbatch.JobOptions(account="a b"))
    with pytest.raises(ValueError, match="time"):
        sbatch.sbatch_script(_preset("lora-1b"), name="x", options=sbatch.JobOptions(time="soon"))


def test_srun_argv_placeholders() -> None:
    config = sbatch.with_options(_multi(per=2, machines=2, strategy="deepspeed"), sbatch.JobOptions())
    argv = sbatch.srun_argv(config, python="py", resume=False)
    assert argv[0] == "py"
    assert _flag(argv, "--machine_rank") == sbatch.NODE_RANK
    assert _flag(argv, "--config_file") == sbatch.CONFIG_FILE
    at = argv.index("--main_process_ip")
    assert argv[at + 1] == sbatch.MAIN_IP and argv[at + 2:] == ["-m", "runner.train", sbatch.RUN_DIR]
    assert "--resume" not in argv and sbatch.srun_argv(config, python="py", resume=True)[-1] == "--resume"
    single = sbatch.with_options(_preset("lora-1b"), sbatch.JobOptions())
    assert "--main_process_ip" not in sbatch.srun_argv(single, python="py")


def test_shell_words_expand_only_the_placeholders() -> None:
    words = sbatch._shell_words([sbatch.PYTHON, "-m", "x y", sbatch.NODE_RANK, sbatch.MAIN_IP, sbatch.RUN_DIR,
                                 sbatch.CONFIG_FILE, "$HOME"])
    assert words == ('"$PYTHON" -m \'x y\' "$SLURM_NODEID" "$MAIN_PROCESS_IP" "$RUN_DIR" '
                     '"$RUN_DIR/accelerate_config.json" \'$HOME\'')


# ---- the standalone script -------------------------------------------------------------------------
def _literals(text: str) -> dict:
    """The settings the script holds as Python literals (MODEL, LORA, TRAINING_ARGS, ...)."""
    out = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id.isupper():
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return out


def test_script_settings_are_the_presets() -> None:
    config = _preset("qlora-8b")
    config = config.model_copy(update={
        "model": config.model.model_copy(update={"tokenizer_name_or_path": "org/tok", "hidden_dropout": 0.1}),
        "training": config.training.model_copy(update={"early_stopping_patience": 4,
                                                       "early_stopping_threshold": 0.01})})
    text = standalone_script(config, name="my run!")
    got = _literals(text)
    m, lo = config.model, config.lora
    assert got["MODEL"] == {
        "name_or_path": m.name_or_path, "tokenizer": "org/tok", "dtype": m.dtype,
        "trust_remote_code": m.trust_remote_code, "attn_implementation": m.attn_implementation,
        "from_scratch": m.from_scratch, "model_type": m.model_type, "vocab_size": m.vocab_size,
        "architecture": {k: getattr(m, k) for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                                    "num_attention_heads", "num_key_value_heads",
                                                    "max_position_embeddings")},
        "hidden_dropout": 0.1, "attention_dropout": m.attention_dropout}
    assert got["QUANTIZATION"] == config.quantization.model_dump(mode="json")
    assert got["QUANTIZATION"]["load_in_4bit"] is True
    assert got["LORA"] == {"enabled": True, "merge_after_training": lo.merge_after_training,
                           "config": {"r": lo.r, "lora_alpha": lo.lora_alpha, "lora_dropout": lo.lora_dropout,
                                      "target_modules": lo.target_modules, "bias": lo.bias,
                                      "use_rslora": lo.use_rslora, "use_dora": lo.use_dora}}
    assert got["DATA"] == config.data.model_dump(mode="json")
    assert got["EARLY_STOPPING"] == {"patience": 4, "threshold": 0.01}
    from runner import prompts

    assert (got["PROMPT_WITH_INPUT"], got["PROMPT_NO_INPUT"]) == (prompts.PROMPT_WITH_INPUT, prompts.PROMPT_NO_INPUT)
    assert got["TRAINING_ARGS"] == training_arguments(config, output_dir="", run_name="my run!", cuda=True,
                                                      has_eval=config.data.eval_split > 0)
    assert text.startswith('#!/usr/bin/env python\n"""Fine-tune my run!: ')
    assert "python train_my_run.py" in text and 'default="runs/my_run"' in text
    assert "__" + "NAME__" not in text and "__SAFE__" not in text and "__PRESET_BLOCK__" not in text
    tail = text[text.index("# Target:"):].splitlines()
    assert tail[0] == f"# Target: {describe(config)}; the script uses a GPU when it finds one."
    assert describe(config).startswith("CUDA GPUs")
    assert tail[1] == "# The tunedeck preset this script was exported from (read by `tunedeck import`)."
    assert block.extract(text) == (block.preset_toml(config), text[:text.index("# tunedeck-preset begin")].count("\n") + 1)


def test_script_tokenizer_defaults_to_the_model_and_names_fall_back() -> None:
    config = _preset("lora-1b")
    got = _literals(standalone_script(config, name="***"))
    assert got["MODEL"]["tokenizer"] == config.model.name_or_path
    text = standalone_script(config, name="***")
    assert "train_run.py" in text and 'default="runs/run"' in text


def test_script_on_cpu_and_eval_data(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _preset("lora-1b", device="cpu")
    config = config.model_copy(update={"data": config.data.model_copy(update={"eval_split": 0.0,
                                                                             "eval_path": "data/dev.jsonl"})})
    got = _literals(standalone_script(config, name="x"))
    assert got["TRAINING_ARGS"] == training_arguments(config, output_dir="", run_name="x", cuda=False, has_eval=True)
    assert got["DATA"]["eval_path"] == "data/dev.jsonl"
    none = config.model_copy(update={"data": config.data.model_copy(update={"eval_path": ""})})
    assert _literals(standalone_script(none, name="x"))["TRAINING_ARGS"] == training_arguments(
        none, output_dir="", run_name="x", cuda=False, has_eval=False)


def test_script_replaces_the_demo_model_and_data_by_real_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    from runner.demo_spec import DEMO_DATA, DEMO_MODEL

    monkeypatch.setattr("runner.export.script.demo_paths", lambda: ("/models/tiny", "/data/demo.jsonl"))
    config = _preset("demo")
    assert config.model.name_or_path == DEMO_MODEL and config.data.path == DEMO_DATA
    config = config.model_copy(update={"data": config.data.model_copy(update={"eval_path": DEMO_DATA})})
    got = _literals(standalone_script(config, name="demo"))
    assert got["MODEL"]["name_or_path"] == "/models/tiny" and got["MODEL"]["tokenizer"] == "/models/tiny"
    assert got["DATA"]["path"] == "/data/demo.jsonl" and got["DATA"]["eval_path"] == "/data/demo.jsonl"
    # only the demo data is replaced: another eval file stays
    other = config.model_copy(update={"data": config.data.model_copy(update={"eval_path": "mine.jsonl"})})
    got = _literals(standalone_script(other, name="demo"))
    assert got["DATA"]["path"] == "/data/demo.jsonl" and got["DATA"]["eval_path"] == "mine.jsonl"
    # a real model with the demo data still gets the data's path, and keeps its own model
    mixed = _preset("lora-1b")
    mixed = mixed.model_copy(update={"data": mixed.data.model_copy(update={"path": DEMO_DATA})})
    got = _literals(standalone_script(mixed, name="m"))
    assert got["MODEL"]["name_or_path"] == mixed.model.name_or_path and got["DATA"]["path"] == "/data/demo.jsonl"


def test_script_eval_split_alone_means_evaluation() -> None:
    config = _preset("lora-1b", device="cpu")
    config = config.model_copy(update={"data": config.data.model_copy(update={"eval_split": 0.1, "eval_path": ""})})
    assert _literals(standalone_script(config, name="x"))["TRAINING_ARGS"] == training_arguments(
        config, output_dir="", run_name="x", cuda=False, has_eval=True)


def test_a_failed_demo_build_names_the_model_field(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import sys

    from runner.export.script import demo_paths

    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'no space left on device' >&2\nexit 3\n")
    broken.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(broken))  # the child that builds the model fails
    with pytest.raises(ConfigError) as err:
        demo_paths()
    problem = err.value.problems[0]
    assert problem.key == "model.name_or_path" and problem.severity == "error"
    assert problem.message == "cannot build the tiny demo model: no space left on device"


def test_script_without_demo_pieces_builds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail():
        raise AssertionError("demo_paths must not run for a preset without demo pieces")

    monkeypatch.setattr("runner.export.script.demo_paths", fail)
    assert "get_peft_model" in standalone_script(_preset("lora-1b"), name="x")


def test_script_settings_read_in_the_presets_order() -> None:
    text = standalone_script(_preset("lora-1b"), name="x")
    settings = text[text.index("MODEL = "):text.index("\nIGNORE")]
    # the schema's order, not sorted: name_or_path first, the dropouts last
    assert settings.startswith("MODEL = {   'name_or_path': ")
    assert settings.index("'name_or_path'") < settings.index("'tokenizer'") < settings.index("'dtype'") \
        < settings.index("'attention_dropout'")
    assert "\n    'tokenizer': " in settings  # one key a line, indented by 4
    assert max(len(line) for line in settings.splitlines()) <= 100
    assert "'learning_rate': 0.0002,\n" in settings


def test_demo_paths_child_runs_this_checkout(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """The child that builds the demo model imports this checkout's runner, even from another directory
    with another `runner` package first on the user's PYTHONPATH."""
    from pathlib import Path

    from runner.export.script import demo_paths

    shadow = tmp_path / "shadow" / "runner"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('some other runner package')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "shadow"))
    cache = tmp_path / "my cache"  # the user's cache setting reaches the child, and a space in it is fine
    monkeypatch.setenv("TUNEDECK_CACHE_DIR", str(cache))
    monkeypatch.chdir(tmp_path)
    model_dir, data_file = demo_paths()
    assert (Path(model_dir) / "config.json").is_file() and Path(data_file).is_file()
    assert Path(model_dir).is_relative_to(cache)
