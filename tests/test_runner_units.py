"""Runner pieces that need no training: argv, accelerate config, run dir, events, diagnosis, registry, data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner import launch, presets
from runner.diagnose import diagnose_text, classify_text
from runner.events import EventTail, EventWriter, read_events
from runner.registry import RunNotFound, effective_state, list_runs, resolve
from runner.rundir import RunDir, new_run_dir
from runner.schema import Config
from tests.conftest import imported_heavy_modules


def demo_config(*overrides: str) -> Config:
    return presets.require("demo", overrides).config


# --- accelerate argv -------------------------------------------------------------------------
def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_cpu_single_process_argv_puts_every_flag_before_the_module(tmp_path: Path) -> None:
    argv = launch.build_argv(demo_config(), tmp_path, cuda=False)
    assert argv[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert "--cpu" in argv and "--multi_gpu" not in argv
    assert argv[-3:] == ["-m", "runner.train", str(tmp_path)]
    module_at = argv.index("runner.train") - 1
    assert all(not a.startswith("--") for a in argv[module_at:])  # nothing of accelerate's after -m
    assert _flag(argv, "--num_processes") == "1" and _flag(argv, "--mixed_precision") == "no"


def test_multi_process_uses_torchrun_ddp_even_on_cpu(tmp_path: Path) -> None:
    argv = launch.build_argv(demo_config("launch.num_processes=2", "launch.main_process_port=29999"), tmp_path, cuda=False)
    assert "--multi_gpu" in argv and "--cpu" not in argv
    assert _flag(argv, "--num_processes") == "2" and _flag(argv, "--main_process_port") == "29999"


@pytest.mark.parametrize(("overrides", "expected"), [
    (("training.bf16=true",), "bf16"),
    (("training.fp16=true",), "fp16"),
    ((), "no"),
    (("training.fp16=true", "launch.mixed_precision='fp16'"), "fp16"),
])
def test_mixed_precision_follows_the_training_precision_on_gpu(tmp_path: Path, overrides, expected) -> None:
    argv = launch.build_argv(demo_config(*overrides), tmp_path, cuda=True)
    assert _flag(argv, "--mixed_precision") == expected
    assert "--cpu" not in argv


def test_gpu_ids_multi_node_and_resume_flags(tmp_path: Path) -> None:
    config = demo_config("launch.gpu_ids='0,1'", "launch.num_processes=2", "launch.num_machines=2",
                         "launch.machine_rank=1", "launch.main_process_ip='10.0.0.1'")
    argv = launch.build_argv(config, tmp_path, cuda=True, resume=True)
    assert _flag(argv, "--gpu_ids") == "0,1" and _flag(argv, "--num_machines") == "2"
    assert _flag(argv, "--machine_rank") == "1" and _flag(argv, "--main_process_ip") == "10.0.0.1"
    assert argv[-4:] == ["-m", "runner.train", str(tmp_path), "--resume"]


@pytest.mark.parametrize(("overrides", "kind"), [
    (("launch.strategy='fsdp'", "launch.num_processes=2"), "FSDP"),
    (("launch.strategy='deepspeed'", "launch.zero_stage=3", "launch.num_processes=2"), "DEEPSPEED"),
])
def test_sharded_strategies_get_an_accelerate_config_file_accelerate_can_read(tmp_path: Path, overrides, kind) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    config = demo_config(*overrides)
    run = launch.prepare(config, preset_name="demo", runs_dir=tmp_path, cuda=True)
    argv = json.loads(run.command.read_text())["argv"]
    assert _flag(argv, "--config_file") == str(run.accelerate_config)
    assert argv.index("--config_file") < argv.index("runner.train")
    assert "--multi_gpu" not in argv
    parsed = load_config_from_file(str(run.accelerate_config))
    assert parsed.distributed_type.value == kind and parsed.num_processes == 2
    if kind == "DEEPSPEED":
        assert parsed.deepspeed_config["zero_stage"] == 3
    else:
        assert parsed.fsdp_config["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"


def test_prepared_run_dir_holds_a_self_contained_snapshot_and_no_secret(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_SECRETVALUE123")
    monkeypatch.setenv("WANDB_API_KEY", "wandbSECRET456")
    config = demo_config("training.learning_rate=3e-4")
    run = launch.prepare(config, preset_name="demo", runs_dir=tmp_path, cuda=False)
    assert run.path.parent == tmp_path.resolve() and run.name.startswith("demo-")
    assert presets.config_digest(presets.require(run.config).config) == presets.config_digest(config)
    command = json.loads(run.command.read_text())
    assert "HF_TOKEN" in command["secret_env_inherited"]
    for path in run.path.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert "SECRETVALUE123" not in text and "wandbSECRET456" not in text, path
    assert run.read_status()["state"] == "starting"


def test_new_run_dirs_never_collide(tmp_path: Path) -> None:
    from datetime import datetime

    now = datetime(2025, 1, 2, 3, 4, 5)
    first, second = new_run_dir(tmp_path, "my preset", now), new_run_dir(tmp_path, "my preset", now)
    assert first.name == "my-preset-20250102-030405" and second.name == "my-preset-20250102-030405-2"


def test_command_modules_do_not_import_heavy_libraries() -> None:
    code = ("import runner.launch, runner.registry, runner.stop, runner.events, runner.diagnose, "
            "runner.demo_spec, runner.rundir, runner.commands.run_cmds, runner.cli\n"
            "runner.cli.build_parser()")
    assert imported_heavy_modules(code) == []


# --- events ------------------------------------------------------------------------------------
def test_event_tail_returns_only_complete_new_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    tail = EventTail(path)
    writer.emit("log", 1, loss=2.0)
    with open(path, "a") as handle:
        handle.write('{"type": "log", "time": 1, "step": 2, "lo')  # a writer caught mid-line
    assert [e["step"] for e in tail.poll()] == [1]
    with open(path, "a") as handle:
        handle.write('ss": 1.5}\nnot json\n')
    assert [(e["step"], e["loss"]) for e in tail.poll()] == [(2, 1.5)]
    assert tail.poll() == []
    assert EventTail(path, from_end=True).poll() == []
    assert len(read_events(path)) == 2


def test_event_writer_rejects_unknown_types_and_rank_nonzero_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        EventWriter(tmp_path / "e.jsonl").emit("lgo", 0)
    EventWriter(tmp_path / "quiet.jsonl", enabled=False).emit("log", 3, loss=1.0)
    assert not (tmp_path / "quiet.jsonl").exists()


# --- diagnosis ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "reason"), [
    ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", "oom"),
    ("RuntimeError: DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 bytes", "oom"),
    ("NonFiniteLoss: loss became nan at step 7", "nan_loss"),
    ("ModuleNotFoundError: No module named 'bitsandbytes'", "missing_dependency"),
    ("OSError: nobody/nothing is not a valid model identifier listed on 'https://huggingface.co/models'", "model_not_found"),
    ("DataError: missing column 'body'", "data_error"),
    ("ValueError: something else", "error"),
])
def test_failure_text_is_classified(text: str, reason: str) -> None:
    assert classify_text(text) == reason


def test_a_signal_death_is_reported_as_killed_with_advice() -> None:
    diagnosis = diagnose_text("step 3/10 | loss 4.0", -signal.SIGKILL)
    assert diagnosis.reason == "killed" and "SIGKILL" in diagnosis.message and "resume" in diagnosis.suggestion
    assert diagnose_text("Traceback...\nRuntimeError: CUDA out of memory", 1).reason == "oom"
    accelerate_said = "subprocess.CalledProcessError: Command '['python', '-m', 'runner.train']' died with <Signals.SIGKILL: 9>."
    assert diagnose_text(accelerate_said, 1).reason == "killed"


# --- registry ----------------------------------------------------------------------------------
def _fake_run(root: Path, name: str, **status) -> RunDir:
    run = RunDir(root / name)
    run.checkpoints.mkdir(parents=True)
    presets.save(Config(), run.config)
    run.update_status(**status)
    return run


def test_run_argument_resolves_by_path_name_prefix_and_latest(tmp_path: Path) -> None:
    a = _fake_run(tmp_path, "demo-20250101-000000", state="finished", started=1.0)
    b = _fake_run(tmp_path, "lora-20250101-000000", state="finished", started=2.0)
    assert resolve(str(a.path)).path == a.path
    assert resolve("demo-20250101-000000", tmp_path).path == a.path
    assert resolve("lora", tmp_path).path == b.path
    assert resolve("latest", tmp_path).path == b.path
    with pytest.raises(RunNotFound, match="did you mean 'lora-20250101-000000'"):
        resolve("lora-20250101-00000x", tmp_path)
    _fake_run(tmp_path, "demo-20250102-000000", state="finished", started=3.0)
    with pytest.raises(RunNotFound, match="matches 2 runs"):
        resolve("demo", tmp_path)


def test_a_running_status_whose_process_is_gone_is_lost(tmp_path: Path) -> None:
    import psutil
    import socket

    run = _fake_run(tmp_path, "demo-1", state="running")
    # A run from before liveness locks: only its supervisor's pid (and command line) speak for it.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-m", "runner.launch", str(run.path)])
    created = psutil.Process(proc.pid).create_time()
    run.update_status(pid=proc.pid, pgid=proc.pid, pid_create_time=created, host=socket.gethostname(), started=time.time())
    assert effective_state(run) == "running"
    proc.kill()
    proc.wait()
    (run.log).write_text("step 5/100 | loss 3.0\n")
    [info] = list_runs(tmp_path)
    assert info.state == "lost" and "loss 3.0" in info.log_tail


def test_a_pid_reused_by_another_process_is_not_the_run_s_supervisor(tmp_path: Path) -> None:
    import psutil
    import socket

    run = _fake_run(tmp_path, "demo-1", state="running")
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-m", "runner.launch", str(run.path)])
    try:
        created = psutil.Process(proc.pid).create_time()
        run.update_status(pid=proc.pid, pgid=proc.pid, pid_create_time=created, host=socket.gethostname())
        assert effective_state(run) == "running"
        # the same pid and command line, but not the process the launcher recorded (it started later)
        run.update_status(pid_create_time=created - 30.0)
        assert effective_state(run) == "lost"
    finally:
        proc.kill()
        proc.wait()


def test_latest_checkpoint_is_the_highest_step(tmp_path: Path) -> None:
    run = _fake_run(tmp_path, "r", state="stopped")
    for step in (5, 40, 10):
        (run.checkpoints / f"checkpoint-{step}").mkdir()
        (run.checkpoints / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (run.checkpoints / "checkpoint-99").mkdir()  # incomplete: no trainer_state.json
    assert run.latest_checkpoint().name == "checkpoint-40"


# --- data: rendering, masking, packing -----------------------------------------------------------
@pytest.fixture(scope="module")
def demo_tokenizer(shared_cache_dir: Path):
    os.environ["TUNEDECK_CACHE_DIR"] = str(shared_cache_dir)
    from runner.train_model import load_tokenizer

    return load_tokenizer(demo_config())


def test_instruction_loss_covers_only_the_answer(demo_tokenizer) -> None:
    from runner.train_data import IGNORE, tokenize_example

    data = demo_config().data
    row = {"instruction": "Give the opposite of the word.", "input": "hot", "output": "cold"}
    ids, labels = tokenize_example(row, demo_tokenizer, data)
    trained = [t for t, label in zip(ids, labels) if label != IGNORE]
    assert demo_tokenizer.decode(trained, skip_special_tokens=True) == "cold"
    assert trained[-1] == demo_tokenizer.eos_token_id
    all_ids, all_labels = tokenize_example(row, demo_tokenizer, data.model_copy(update={"completion_only_loss": False}))
    assert all_ids == ids and all_labels == all_ids


def test_chat_loss_covers_only_assistant_turns(demo_tokenizer) -> None:
    from runner.train_data import IGNORE, tokenize_example

    data = demo_config("data.format='chat'").data
    row = {"messages": [{"role": "user", "content": "Count up from the number. 3"},
                        {"role": "assistant", "content": "3 4 5"},
                        {"role": "user", "content": "Again. 7"},
                        {"role": "assistant", "content": "7 8 9"}]}
    ids, labels = tokenize_example(row, demo_tokenizer, data)
    assert demo_tokenizer.decode(ids) == demo_tokenizer.apply_chat_template(row["messages"], tokenize=False)
    trained = demo_tokenizer.decode([t for t, label in zip(ids, labels) if label != IGNORE], skip_special_tokens=True)
    assert "3 4 5" in trained and "7 8 9" in trained and "Count" not in trained and "assistant" not in trained


@pytest.mark.parametrize("flatten", [False, True])
def test_packed_batches_keep_examples_apart(demo_tokenizer, flatten: bool) -> None:
    import datasets
    import torch
    from transformers import AutoModelForCausalLM

    from runner.train_data import IGNORE, PackedCollator, pack
    from runner.train_demo import demo_model_dir

    texts = ["Count up from the number. 3 -> 3 4 5", "hot -> cold", "Write the plural of the word. cat -> cats",
             "Repeat the word three times. dog -> dog dog dog", "Italy -> Rome"]
    encoded = [demo_tokenizer(t)["input_ids"] for t in texts]
    ds = datasets.Dataset.from_dict({"input_ids": encoded, "labels": encoded})
    max_len = max(map(len, encoded)) + 6
    packed = pack(ds, max_len)
    assert 1 < len(packed) < len(ds)  # several examples share a row
    assert sum(map(len, packed["input_ids"])) == sum(map(len, encoded))  # no token lost
    assert all(len(row) <= max_len for row in packed["input_ids"])

    batch = PackedCollator(demo_tokenizer.pad_token_id, flatten=flatten)([dict(r) for r in packed])
    assert "attention_mask" not in batch  # the mask comes from the position ids
    if flatten:
        assert batch["input_ids"].shape[0] == 1 and (batch["input_ids"] != demo_tokenizer.pad_token_id).all()
    real = batch["input_ids"] != demo_tokenizer.pad_token_id
    assert (batch["labels"][~real] == IGNORE).all()
    assert (batch["labels"][batch["position_ids"] == 0] == IGNORE).all()

    # Each example gets the logits it gets alone: no attention leaks across examples or from padding.
    # use_cache=False as in training (the Trainer turns the KV cache off; with one, transformers skips
    # the packed-sequence mask).
    model = AutoModelForCausalLM.from_pretrained(demo_model_dir()).eval()
    seen = 0
    with torch.no_grad():
        packed_logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        for r in range(batch["input_ids"].shape[0]):
            n = int(real[r].sum())
            starts = (batch["position_ids"][r, :n] == 0).nonzero().flatten().tolist() + [n]
            for begin, end in zip(starts, starts[1:]):
                alone = model(input_ids=batch["input_ids"][r:r + 1, begin:end]).logits[0]
                torch.testing.assert_close(packed_logits[r, begin:end], alone, atol=1e-4, rtol=1e-4)
                seen += 1
    assert seen == len(texts)


def test_missing_column_and_missing_file_are_data_errors_with_the_fix(demo_tokenizer, tmp_path: Path) -> None:
    import datasets

    from runner.diagnose import DataError
    from runner.train_data import load_rows, tokenize_dataset

    data = demo_config("data.format='text'", "data.text_field='txt'").data
    ds = datasets.Dataset.from_dict({"text": ["a b"]})
    with pytest.raises(DataError, match="missing column 'txt'.*did you mean 'text'"):
        tokenize_dataset(ds, demo_tokenizer, data, 64, "t")
    with pytest.raises(DataError, match="no such file"):
        load_rows(str(tmp_path / "nope.jsonl"), "train")


# --- which processes belong to a run ------------------------------------------------------------------
def test_the_trainer_is_told_apart_from_the_launcher_that_names_it(tmp_path: Path) -> None:
    from runner.registry import is_trainer_of

    run = str(tmp_path.resolve())
    launcher = ["python", "-m", "accelerate.commands.launch", "--multi_gpu", "-m", "runner.train", run]
    trainer = ["python", "-u", "-m", "runner.train", run]
    assert not is_trainer_of(launcher) and not is_trainer_of(launcher, run)
    assert is_trainer_of(trainer) and is_trainer_of(trainer, run)
    assert not is_trainer_of(trainer, str(tmp_path / "another-run"))


def test_run_pids_finds_trainers_outside_the_process_group(tmp_path: Path) -> None:
    """torch's launcher starts each rank in its own session: such a trainer is still the run's."""
    from runner.registry import run_pids

    # A stand-in with the trainer's command line (runner.train on a missing config would exit at once).
    fake_module = tmp_path / "pkg" / "runner"
    fake_module.mkdir(parents=True)
    (fake_module / "__init__.py").write_text("")
    (fake_module / "train.py").write_text("import time\ntime.sleep(30)\n")
    trainer = subprocess.Popen([sys.executable, "-m", "runner.train", str(tmp_path)], cwd=tmp_path / "pkg",
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while trainer.pid not in run_pids(tmp_path, None) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert trainer.pid in run_pids(tmp_path, None)
        assert trainer.pid not in run_pids(tmp_path / "elsewhere", None)
    finally:
        trainer.kill()
        trainer.wait()
    assert trainer.pid not in run_pids(tmp_path, None)
