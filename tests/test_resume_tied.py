"""The first resume of the demo (whose output head shares the input embedding) prints no missing
`lm_head.weight` warning, and its output.log rounds eval lines like training lines. Real training:
the demo model through `tunedeck run --detach`, `tunedeck stop`, `tunedeck resume`."""

from __future__ import annotations

import re

import pytest

from runner.events import read_events
from tests.test_runner_e2e import env, run_dir_of, tunedeck, wait_final, wait_for  # noqa: F401 - env is a fixture

SHORT = ("--set", "training.max_steps=24", "--set", "training.logging_steps=1", "--set", "training.eval_steps=4",
         "--set", "training.save_steps=1000", "--set", "training.per_device_train_batch_size=32")
ROUNDED_EVAL = re.compile(r"^eval at step \d+ \| eval_loss \d+\.\d{4} \| perplexity \d+\.\d{2}\b", re.M)
ROUNDED_LOG = re.compile(r"^step \d+/24 \| loss \d+\.\d{4} \|", re.M)


@pytest.mark.slow
def test_resume_of_a_tied_model_warns_of_no_missing_weight(env) -> None:  # noqa: F811 - the fixture
    run = run_dir_of(tunedeck(env, "run", "demo", "--detach", *SHORT))
    wait_for(lambda: any(e["type"] == "eval" for e in read_events(run.events)), 400, "the first evaluation")
    stopped = tunedeck(env, "stop", run.name, "--grace", "60")
    assert stopped.returncode == 0, stopped.stdout
    assert run.read_status()["state"] == "stopped" and run.latest_checkpoint() is not None

    resumed = tunedeck(env, "resume", run.name)
    assert resumed.returncode == 0, resumed.stderr
    assert wait_final(run)["state"] == "finished", run.log.read_text()[-3000:]
    events = read_events(run.events)
    assert [e["type"] for e in events].count("run_started") == 2
    log = run.log.read_text()
    assert "resuming from checkpoint-" in log
    assert "lm_head.weight" not in log and "missing keys" not in log, log[-3000:]
    assert "lm_head.weight" not in resumed.stdout + resumed.stderr
    evals = ROUNDED_EVAL.findall(log)
    assert len(evals) == len([e for e in events if e["type"] == "eval"]) >= 2, log[-3000:]
    assert ROUNDED_LOG.search(log)


def test_only_a_tie_the_model_really_shares_counts_as_saved() -> None:
    """A tied head that is the embedding's own tensor is not missing; an untied head still is."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from runner.demo_spec import TINY_DEMO_CONFIG
    from runner.train_trainer import shared_tied_keys

    spec = {k: v for k, v in TINY_DEMO_CONFIG.items() if k != "model_type"}
    tied = LlamaForCausalLM(LlamaConfig(**{**spec, "tie_word_embeddings": True}))
    assert shared_tied_keys(tied) == {"lm_head.weight"}
    untied = LlamaForCausalLM(LlamaConfig(**{**spec, "tie_word_embeddings": False}))
    assert shared_tied_keys(untied) == set()
