"""Eval lines are rounded like training lines, in output.log (the trainer) and in `tunedeck logs --events`."""

from __future__ import annotations

import re

from runner.commands.run_cmds import describe
from runner.progress_lines import LOSS_DIGITS, eval_line, log_line

LOG = {"type": "log", "step": 40, "total_steps": 380, "loss": 1.234567891, "learning_rate": 0.000987654,
       "tokens_per_s": 512.4, "elapsed_s": 31.2, "eta_s": 245.9}
EVAL = {"type": "eval", "step": 40, "eval_loss": 1.299999999123, "perplexity": 3.669296666, "epoch": 0.42,
        "eval_runtime": 1.23456, "eval_samples_per_second": 64.81234}


def decimals(text: str, name: str) -> int:
    return len(re.search(rf"\b{name} -?\d+\.(\d+)", text).group(1))


def test_training_and_eval_lines_round_losses_alike():
    train, evaluation = log_line(LOG), eval_line(EVAL)
    assert train == "step 40/380 | loss 1.2346 | lr 9.88e-04 | 512 tok/s | elapsed 0:00:31 | ETA 0:04:05"
    assert evaluation.startswith("eval at step 40 | eval_loss 1.3000 | perplexity 3.67")
    assert decimals(train, "loss") == decimals(evaluation, "eval_loss") == LOSS_DIGITS
    assert "eval_runtime 1.2346" in evaluation and "eval_samples_per_second 64.8123" in evaluation
    assert "1.29999" not in evaluation and "3.6692" not in evaluation


def test_the_cli_prints_the_trainers_lines():
    assert describe(LOG) == log_line(LOG) and describe(EVAL) == eval_line(EVAL)


def test_unknown_and_non_finite_values_read_as_unknown():
    assert eval_line({"step": 3, "eval_loss": None, "perplexity": None}) == \
        "eval at step 3 | eval_loss ? | perplexity ?"
    assert "loss ?" in log_line({"step": 1, "loss": float("nan")})
    assert "perplexity 1.01e+300" in eval_line({"step": 1, "eval_loss": 690.8, "perplexity": 1.01e300})
