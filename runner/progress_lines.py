"""The human lines for training progress, from the same numbers as the events.

The trainer prints them into output.log, and `tunedeck run`, `resume` and `logs --events` print
them from events.jsonl: one formatter, so an evaluation reads (and rounds) like a training step.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

LOSS_DIGITS = 4  # losses to 4 decimals: a change in the third shows, noise below it does not
SEPARATOR = " | "


def _known(value: Any) -> bool:
    """A finite number (events write null for unknown and NaN values; bools are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def loss_text(value: Any) -> str:
    """A loss (or any eval metric) rounded like every other one; "?" when unknown or not finite."""
    return f"{value:.{LOSS_DIGITS}f}" if _known(value) else "?"


def perplexity_text(value: Any) -> str:
    """exp(loss): two decimals while it is readable, then three significant digits."""
    if not _known(value):
        return "?"
    return f"{value:.2f}" if value < 1e6 else f"{value:.3g}"


def duration_text(seconds: Any, unknown: str = "?") -> str:
    """`0:04:05`, `1 day, 2:00:00`; `unknown` when there is no finite number of seconds."""
    return str(dt.timedelta(seconds=int(seconds))) if _known(seconds) else unknown


def log_line(event: dict[str, Any]) -> str:
    """`step 40/380 | loss 1.2346 | lr 9.87e-04 | 512 tok/s | elapsed 0:00:31 | ETA 0:04:05`."""
    lr = event.get("learning_rate")
    lr_text = f"{lr:.2e}" if _known(lr) else "?"
    tokens = event.get("tokens_per_s")
    return SEPARATOR.join((
        f"step {event.get('step')}/{event.get('total_steps') or '?'}", f"loss {loss_text(event.get('loss'))}",
        f"lr {lr_text}", f"{tokens if _known(tokens) else 0:.0f} tok/s",
        f"elapsed {duration_text(event.get('elapsed_s'))}", f"ETA {duration_text(event.get('eta_s'))}"))


def eval_line(event: dict[str, Any]) -> str:
    """`eval at step 40 | eval_loss 1.3000 | perplexity 3.67`, then any other eval_* metric rounded the same."""
    parts = [f"eval at step {event.get('step')}", f"eval_loss {loss_text(event.get('eval_loss'))}",
             f"perplexity {perplexity_text(event.get('perplexity'))}"]
    parts += [f"{key} {loss_text(value)}" for key, value in event.items()
              if key.startswith("eval_") and key != "eval_loss" and _known(value)]
    return SEPARATOR.join(parts)
