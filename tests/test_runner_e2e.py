"""End to end on CPU through the real `tunedeck` CLI and `accelerate launch`, with the tiny demo model.

Runs share work: one demo run (full fine-tune) serves several checks, the failure classes start
concurrently, and every other run is a few steps long.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner.events import read_events
from runner.registry import run_pids
from runner.rundir import FINAL_STATES, RunDir
from fixtures.processes import cli, run_dir_of
from fixtures.processes import wait_until as wait_for
from tests.conftest import ROOT, python_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env(shared_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("runner-e2e")
    e = python_env()
    e.update(TUNEDECK_CACHE_DIR=str(shared_cache_dir), TUNEDECK_CONFIG_DIR=str(home / "config"),
             TUNEDECK_STATE_DIR=str(home / "state"), TUNEDECK_RUNS_DIR=str(home / "runs"),
             HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return e


def tunedeck(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return cli(*args, env=env, cwd=ROOT, timeout=timeout)


def wait_final(run: RunDir, timeout: float = 600) -> dict:
    wait_for(lambda: run.read_status().get("state") in FINAL_STATES and run.read_status().get("exit_code") is not None,
             timeout, f"{run.name} to end")
    return run.read_status()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def types(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


# --- the demo: a full fine-tune, in the foreground --------------------------------------------
@pytest.fixture(scope="module")
def demo(env) -> tuple[subprocess.CompletedProcess, RunDir, float]:
    start = time.monotonic()
    result = tunedeck(env, "run", "demo", timeout=1200)  # 4 epochs; a generous deadline for a loaded machine
    return result, run_dir_of(result), time.monotonic() - start


def test_demo_trains_end_to_end_with_a_falling_loss(demo) -> None:
    result, run, seconds = demo
    assert result.returncode == 0, result.stdout + result.stderr
    events = read_events(run.events)
    kinds = types(events)
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert {"log", "eval", "sample", "checkpoint"} <= set(kinds)
    losses = [e["loss"] for e in events if e["type"] == "log"]
    assert losses[0] > 4.5 and losses[-1] < 2.5 and losses[-1] < losses[0] / 2, losses
    evals = [e["eval_loss"] for e in events if e["type"] == "eval"]
    assert evals[-1] < evals[0] and all(e["perplexity"] > 1 for e in events if e["type"] == "eval")
    started = events[0]
    assert started["params_trainable"] == started["params_total"] > 500_000  # full fine-tune
    assert started["device"]["type"] == "cpu" and started["world_size"] == 1
    log = next(e for e in events if e["type"] == "log")
    assert {"learning_rate", "grad_norm", "epoch", "tokens_per_s", "samples_per_s", "eta_s", "elapsed_s"} <= set(log)
    assert not any(k.startswith("gpu_mem") for k in log)  # no GPU: no GPU keys
    assert [e["step"] for e in events] == sorted(e["step"] for e in events)
    print(f"demo run took {seconds:.1f}s wall, loss {losses[0]:.2f} -> {losses[-1]:.2f}")


def test_demo_samples_answer_both_shipped_prompts_exactly(demo) -> None:
    """The sampler renders prompts as training rows are rendered (the instruction's input section
    included), so the trained demo answers its own sample prompts."""
    from runner import presets

    _, run, _ = demo
    shipped = presets.require("demo").config.generation.prompts
    final = {e["prompt"]: e["completion"] for e in read_events(run.events) if e["type"] == "sample" and e["when"] == "end"}
    assert list(final) == shipped
    assert final == {"Repeat the word three times. ### Input: lamp": "lamp lamp lamp",
                     "Write the plural of the word. ### Input: hill": "hills"}, final


def test_demo_run_directory_is_a_complete_record(demo) -> None:
    from runner import presets

    _, run, _ = demo
    status = run.read_status()
    assert status["state"] == "finished" and status["exit_code"] == 0
    assert presets.config_digest(presets.require(run.config).config) == read_events(run.events)[0]["config_digest"]
    argv = json.loads(run.command.read_text())["argv"]
    assert argv[argv.index("-m", 3):] == ["-m", "runner.train", str(run.path)]
    assert (run.final / "model.safetensors").is_file() and (run.final / "tokenizer.json").is_file()
    assert any(run.checkpoints.glob("checkpoint-*/tunedeck.json"))
    log = run.log.read_text()
    assert "\r" not in log and "step " in log and "finished at step" in log  # readable, no progress bars


def test_runs_and_logs_show_the_finished_demo(env, demo) -> None:
    _, run, _ = demo
    listed = json.loads(tunedeck(env, "runs", "--json").stdout)
    entry = next(r for r in listed if r["name"] == run.name)
    assert entry["state"] == "finished" and entry["progress"] == 1.0 and entry["last_loss"] < 2.5
    assert entry["preset"] == "demo" and entry["duration_s"] > 0
    table = tunedeck(env, "runs").stdout
    assert run.name in table and "finished" in table
    logs = tunedeck(env, "logs", run.name[:-2], "-n", "3")  # a unique prefix is enough
    assert logs.returncode == 0 and "finished at step" in logs.stdout
    followed = tunedeck(env, "logs", "latest", "-f", timeout=30)  # an ended run: -f returns at once
    assert followed.returncode == 0 and "finished at step" in followed.stdout
    events = tunedeck(env, "logs", run.name, "--events", "-n", "1")
    assert json.loads(events.stdout)["type"] == "run_finished"
    missing = tunedeck(env, "logs", "no-such-run")
    assert missing.returncode == 2 and "no run 'no-such-run'" in missing.stderr


# --- LoRA, detached: the run outlives the command that started it ---------------------------------
def test_lora_run_survives_its_launcher_and_saves_adapter_and_merged_model(env) -> None:
    result = tunedeck(env, "run", "demo", "--detach", "--set", "lora.enabled=true", "--set", "lora.r=8",
                      "--set", "lora.merge_after_training=true", "--set", "training.max_steps=12",
                      "--set", "training.eval_strategy='no'", "--set", "training.logging_steps=2")
    assert result.returncode == 0, result.stderr
    run = run_dir_of(result)
    assert run.read_status()["state"] in ("starting", "running")  # returned at once, before the run ended
    status = wait_for(lambda: run.read_status().get("pid") and run.read_status(), 30, "pid")
    assert os.getsid(status["pid"]) == status["pid"] != os.getsid(0)  # its own session, not ours
    status = wait_final(run)
    assert status["state"] == "finished", run.log.read_text()[-3000:]
    started_event = read_events(run.events)[0]
    assert 0 < started_event["params_trainable"] < started_event["params_total"] / 5
    assert (run.final / "adapter_config.json").is_file() and (run.final / "adapter_model.safetensors").is_file()
    assert (run.final / "merged" / "model.safetensors").is_file()


# --- DDP on two CPU processes ---------------------------------------------------------------------
def test_two_process_cpu_ddp_run_finishes(env) -> None:
    result = tunedeck(env, "run", "demo", "--set", "launch.num_processes=2", "--set", f"launch.main_process_port={free_port()}",
                      "--set", "training.max_steps=8", "--set", "training.logging_steps=2", "--set", "training.eval_steps=4")
    run = run_dir_of(result)
    assert result.returncode == 0, run.log.read_text()[-3000:]
    events = read_events(run.events)
    assert events[0]["world_size"] == 2 and events[0]["effective_batch_size"] == 2 * 16
    assert types(events).count("run_started") == 1  # only rank 0 writes events
    assert events[-1]["type"] == "run_finished" and events[-1]["step"] == 8
    assert "--multi_gpu" in json.loads(run.command.read_text())["argv"]


# --- stop, then resume from the checkpoint ------------------------------------------------------------
SLOW_RUN = ("--set", "training.max_steps=60", "--set", "training.logging_steps=2", "--set", "training.per_device_train_batch_size=64",
            "--set", "training.eval_strategy='no'", "--set", "training.save_steps=1000")


def test_stop_checkpoints_and_resume_continues_from_that_step(env) -> None:
    run = run_dir_of(tunedeck(env, "run", "demo", "--detach", *SLOW_RUN))
    wait_for(lambda: any(e["type"] == "log" and e["step"] >= 6 for e in read_events(run.events)), 400, "step 6")
    pgid = run.read_status()["pgid"]
    stopped = tunedeck(env, "stop", run.name, "--grace", "60")
    assert stopped.returncode == 0 and "no process of the run is left" in stopped.stdout, stopped.stdout
    assert run_pids(run.path, pgid) == []
    status = run.read_status()
    assert status["state"] == "stopped"
    events = read_events(run.events)
    assert events[-1]["type"] == "run_stopped" and "SIGTERM" in events[-1]["reason"]
    stop_step = events[-1]["step"]
    assert 6 <= stop_step < 60 and run.latest_checkpoint().name == f"checkpoint-{stop_step}"
    last_lr = [e["learning_rate"] for e in events if e["type"] == "log"][-1]

    changed = tunedeck(env, "resume", run.name, "--set", "training.learning_rate=5e-4")
    assert changed.returncode == 2 and "changed since" in changed.stderr and "--force" in changed.stderr

    resumed = tunedeck(env, "resume", run.name)
    assert resumed.returncode == 0, run.log.read_text()[-3000:]
    events = read_events(run.events)
    second = [e for e in events if e["type"] == "run_started"][1]
    assert second["start_step"] == stop_step and second["resumed_from"] == f"checkpoint-{stop_step}"
    after = events[events.index(second) + 1:]
    logs = [e for e in after if e["type"] == "log"]
    assert logs[0]["step"] > stop_step  # the step counter continues
    assert logs[0]["learning_rate"] < last_lr  # the cosine schedule continues (no new warmup)
    assert after[-1]["type"] == "run_finished" and after[-1]["step"] == 60
    assert run.read_status()["state"] == "finished"


def test_stopping_a_two_process_run_checkpoints_and_leaves_no_traceback(env) -> None:
    run = run_dir_of(tunedeck(env, "run", "demo", "--detach", *SLOW_RUN, "--set", "launch.num_processes=2",
                              "--set", f"launch.main_process_port={free_port()}"))
    wait_for(lambda: any(e["type"] == "log" and e["step"] >= 4 for e in read_events(run.events)), 400, "step 4")
    pgid = run.read_status()["pgid"]
    stopped = tunedeck(env, "stop", run.name, "--grace", "60")
    assert stopped.returncode == 0 and "escalated" not in stopped.stdout, stopped.stdout
    assert run_pids(run.path, pgid) == []
    assert run.read_status()["state"] == "stopped"
    events = read_events(run.events)
    assert events[-1]["type"] == "run_stopped" and events[-1]["checkpoint"], events[-1]
    log = run.log.read_text()
    # Only the trainers are signalled: the launcher sees them exit cleanly instead of dying on SIGTERM.
    assert "Traceback" not in log and "SignalException" not in log, log[-3000:]
    # Each rank closes its process group before exiting: left to interpreter shutdown, gloo's threads
    # abort the process (SIGABRT), and the launcher reports the stopped run as failed.
    assert "terminate called" not in log and "exited with code 0" in log, log[-3000:]
    assert log.count("[tunedeck] stopped at step") == 1, log[-3000:]  # rank 0 says it, once


def test_ctrl_c_in_the_foreground_stops_the_run_gracefully(env) -> None:
    cli = subprocess.Popen([sys.executable, "-m", "runner.cli", "run", "demo", *SLOW_RUN], env=env, cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = cli.stdout.readline()
    assert first.startswith("run directory: "), first
    run = RunDir(Path(first.split(": ", 1)[1].strip()))
    wait_for(lambda: any(e["type"] == "log" for e in read_events(run.events)), 400, "the first log")
    cli.send_signal(signal.SIGINT)  # what Ctrl-C delivers to the foreground command
    out, _ = cli.communicate(timeout=400)
    assert cli.returncode == 130 and "stopping (saving a checkpoint first" in out, out
    assert run.read_status()["state"] == "stopped" and read_events(run.events)[-1]["type"] == "run_stopped"
    assert run.latest_checkpoint() is not None


# --- failure classes ----------------------------------------------------------------------------------
FAILURES = {
    "model_not_found": ("--set", "model.name_or_path='/nonexistent/model-dir'"),
    "nan_loss": ("--set", "training.learning_rate=10.0", "--set", "training.optim='sgd'", "--set", "training.max_grad_norm=0.0",
                 "--set", "training.max_steps=40", "--set", "training.logging_steps=1", "--set", "training.warmup_steps=0"),
    "oom": ("--set", "model.from_scratch=true", "--set", "model.tokenizer_name_or_path='tunedeck:tiny-demo'",
            "--set", "model.vocab_size=1048576", "--set", "model.hidden_size=65536", "--set", "model.num_attention_heads=512",
            "--set", "model.num_key_value_heads=512", "--set", "model.num_hidden_layers=1", "--set", "model.max_position_embeddings=64"),
}


DATA_FAILURES = {  # refused by `tunedeck run` before a run directory exists; the trainer reports them too
    "data_error": ("--set", "data.path='/nonexistent/train.jsonl'"),
    "missing_column": ("--set", "data.format='text'", "--set", "data.text_field='body'"),
}


def test_each_failure_class_ends_as_run_failed_with_reason_and_advice(env, tmp_path: Path) -> None:
    from runner import launch, presets

    runs = {name: run_dir_of(tunedeck(env, "run", "demo", "--detach", *args)) for name, args in FAILURES.items()}
    # 4-bit on a machine without CUDA and bad data: the CLI refuses before launching...
    refused = tunedeck(env, "run", "demo", "--set", "lora.enabled=true", "--set", "quantization.load_in_4bit=true")
    assert refused.returncode == 2 and "CUDA" in refused.stderr and "run directory" not in refused.stdout
    for args, fragment in ((DATA_FAILURES["data_error"], "no such file or directory: /nonexistent/train.jsonl"),
                           (DATA_FAILURES["missing_column"], "no field 'body'")):
        refused = tunedeck(env, "run", "demo", *args)
        assert refused.returncode == 2 and fragment in refused.stderr and "run directory" not in refused.stdout
    # ...and a run started anyway (say, prepared on another machine) fails in the trainer.
    prepared = {"missing_dependency": ["lora.enabled=true", "quantization.load_in_4bit=true"],
                **{name: [a for a in args if a != "--set"] for name, args in DATA_FAILURES.items()}}
    old = dict(os.environ)
    os.environ.update(env)
    try:
        for name, overrides in prepared.items():
            config = presets.require("demo", overrides).config
            runs[name] = launch.prepare(config, preset_name="demo", runs_dir=tmp_path, cuda=False)
            launch.start(runs[name])
    finally:
        os.environ.clear()
        os.environ.update(old)

    expected = {"data_error": ("data_error", "nonexistent/train.jsonl"), "missing_column": ("data_error", "no field 'body'"),
                "model_not_found": ("model_not_found", "nonexistent/model-dir"), "nan_loss": ("nan_loss", "nan"),
                "oom": ("oom", "allocate"), "missing_dependency": ("missing_dependency", "4-bit")}
    for name, run in runs.items():
        status = wait_final(run)
        reason, fragment = expected[name]
        failed = read_events(run.events)[-1]
        assert status["state"] == "failed" and failed["type"] == "run_failed", (name, run.log.read_text()[-2000:])
        assert failed["reason"] == status["reason"] == reason, (name, failed)
        assert fragment in failed["message"] and "\n" not in failed["message"], (name, failed["message"])
        assert failed["suggestion"] and failed["traceback_tail"], name
    assert "gradient_accumulation_steps" in read_events(runs["oom"].events)[-1]["suggestion"]
    assert "learning_rate" in read_events(runs["nan_loss"].events)[-1]["suggestion"]


# --- killed from outside -----------------------------------------------------------------------------
def test_killed_runs_are_reported_lost_or_killed(env) -> None:
    long = ("--set", "training.max_steps=5000", "--set", "training.logging_steps=1", "--set", "training.eval_strategy='no'")
    whole = run_dir_of(tunedeck(env, "run", "demo", "--detach", *long))
    trainer_only = run_dir_of(tunedeck(env, "run", "demo", "--detach", *long))
    for run in (whole, trainer_only):
        wait_for(lambda run=run: any(e["type"] == "log" for e in read_events(run.events)), 400, f"{run.name} logging")
    os.killpg(whole.read_status()["pgid"], signal.SIGKILL)  # everything, the supervisor included
    os.kill(trainer_only.read_status()["trainer_pid"], signal.SIGKILL)  # just the trainer (e.g. the OOM killer)

    wait_for(lambda: run_pids(whole.path, whole.read_status()["pgid"]) == [], 120, "the killed group to vanish")
    listed = {r["name"]: r for r in json.loads(tunedeck(env, "runs", "--json").stdout)}
    assert listed[whole.name]["state"] == "lost" and "step " in listed[whole.name]["log_tail"]
    assert whole.read_status()["state"] == "running"  # the file says running; the registry knows better
    table = tunedeck(env, "runs").stdout
    assert f"{whole.name} is lost" in table
    assert "not running" in tunedeck(env, "stop", whole.name).stdout

    status = wait_final(trainer_only, 300)
    assert status["state"] == "failed" and status["reason"] == "killed", status
    assert read_events(trainer_only.events)[-1]["type"] == "run_failed"
    wait_for(lambda: run_pids(trainer_only.path, trainer_only.read_status()["pgid"]) == [], 180, "the rest of the group to exit")
