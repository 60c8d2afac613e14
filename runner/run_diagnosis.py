"""What is going wrong in a run, read from its events: out of memory, NaN/inf loss, a loss that is
not falling, overfitting, gradient-norm spikes. Each finding carries concrete suggestions, and each
suggestion the config changes ({"section.key": value}) to start a new run with.

Out of memory, the suggestions are the estimator's remedies for the run's config (runner.estimate
.remedies through runner.diagnose.memory_remedies): the same list the memory gauge shows. The other
remedies paraphrase the project's reference notes: instability (NaN, spikes, a stuck loss)
by a lower learning rate, a longer warm-up and gradient clipping at about 1.0; overfitting by
stopping early, fewer epochs and more weight decay / dropout.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from runner.diagnose import SUGGESTIONS, memory_remedies
from runner.run_model import RunModel
from runner.schema import Config, get_value

MIN_POINTS_FOR_TREND = 12  # train-loss logs needed before judging whether the loss falls
FLAT_RATIO = 0.98  # the recent loss must be below 98% of the early loss to count as falling
OVERFIT_RISE = 0.02  # eval loss 2% above its best, on the latest two evaluations
SPIKE_FACTOR = 10.0  # a grad norm 10x the median of those before it is a spike
SPIKE_WINDOW = 20


@dataclass(frozen=True)
class Suggestion:
    title: str  # what to do, one line
    changes: dict[str, Any] = field(default_factory=dict)  # config edits for a new run ({} = advice only)


@dataclass(frozen=True)
class Finding:
    code: str  # "oom" | "nan" | "flat" | "overfit" | "grad_spike" | "failed"
    severity: str  # "error" (the run died) | "warning"
    title: str
    detail: str
    suggestions: tuple[Suggestion, ...] = ()

    @property
    def changes(self) -> dict[str, Any]:
        """The first suggestion with changes: what the banner's key applies."""
        return next((s.changes for s in self.suggestions if s.changes), {})


def diagnose(model: RunModel, config: Config | None) -> list[Finding]:
    """Every problem visible in the run so far, most serious first."""
    findings = [f for f in (_failure(model, config), _nonfinite(model, config), _overfitting(model, config),
                            _grad_spikes(model, config), _flat_loss(model, config)) if f is not None]
    seen: set[str] = set()
    unique = []
    for finding in findings:  # a NaN failure is reported once, not as failure and as NaN
        if finding.code not in seen:
            seen.add(finding.code)
            unique.append(finding)
    return unique


# --- individual checks ---------------------------------------------------------------------------------
def _failure(model: RunModel, config: Config | None) -> Finding | None:
    terminal = model.terminal
    if terminal is None or terminal.get("type") != "run_failed":
        return None
    reason = terminal.get("reason", "error")
    message = str(terminal.get("message") or "")
    if reason == "oom":
        return Finding("oom", "error", "Out of memory", message or "the run ran out of memory",
                       _memory_suggestions(model, config, message))
    if reason == "nan_loss":
        return Finding("nan", "error", "The loss became NaN or infinite", message, _stability_suggestions(config))
    advice = str(terminal.get("suggestion") or "")
    return Finding("failed", "error", f"Run failed ({reason})", message,
                   (Suggestion(advice),) if advice else ())


def _nonfinite(model: RunModel, config: Config | None) -> Finding | None:
    if model.nonfinite_losses == 0:
        return None
    return Finding("nan", "warning", "NaN/inf loss",
                   f"{model.nonfinite_losses} logged loss value(s) were NaN or infinite: training is diverging",
                   _stability_suggestions(config))


def _flat_loss(model: RunModel, config: Config | None) -> Finding | None:
    losses = model.finite("loss")
    if len(losses) < MIN_POINTS_FOR_TREND:
        return None
    total = model.total_steps or 0
    if total and model.step < 0.1 * total:  # too early: the first tenth of training is noisy
        return None
    fifth = max(3, len(losses) // 5)
    early, recent = statistics.fmean(losses[:fifth]), statistics.fmean(losses[-fifth:])
    if recent < early * FLAT_RATIO:
        return None
    return Finding("flat", "warning", "Loss is not falling",
                   f"mean of the last {fifth} losses {recent:.4g} vs {early:.4g} at the start",
                   _stability_suggestions(config, flat=True))


def _overfitting(model: RunModel, config: Config | None) -> Finding | None:
    evals = [(s, e, x) for s, e, x in zip(model.evals["step"], model.evals["epoch"], model.evals["eval_loss"])
             if math.isfinite(x)]
    if len(evals) < 3:
        return None
    best_i = min(range(len(evals)), key=lambda i: evals[i][2])
    best_step, best_epoch, best = evals[best_i]
    last_two = evals[-2:]
    rising = best_i < len(evals) - 2 and all(x > best * (1 + OVERFIT_RISE) for _, _, x in last_two) \
        and last_two[1][2] >= last_two[0][2]
    if not rising:
        return None
    # Train loss over the same span: smoothed at the best eval vs now.
    steps, losses = model.train["step"], model.train["loss"]
    before = [x for s, x in zip(steps, losses) if s <= best_step and math.isfinite(x)][-5:]
    after = [x for x in losses[-5:] if math.isfinite(x)]
    if not before or not after or statistics.fmean(after) >= statistics.fmean(before):
        return None
    detail = (f"eval loss {last_two[1][2]:.4g} is up from its best {best:.4g} at step {int(best_step)} "
              "while the training loss keeps falling")
    return Finding("overfit", "warning", "Overfitting", detail,
                   _overfit_suggestions(config, best_epoch if math.isfinite(best_epoch) else None))


def _grad_spikes(model: RunModel, config: Config | None) -> Finding | None:
    norms = model.finite("grad_norm")
    # Each point is judged against the points before it only, so the scan resumes where the last
    # diagnosis stopped (a live run is diagnosed every second; its history need not be rescanned).
    scan = model.derived.get("grad spikes")
    if scan is None or scan[0] is not norms or scan[1] > len(norms):
        scan = model.derived["grad spikes"] = [norms, SPIKE_WINDOW // 2, 0, 0.0]
    _, start, spikes, worst = scan
    for i in range(start, len(norms)):
        window = norms[max(0, i - SPIKE_WINDOW):i]
        typical = statistics.median(window)
        if typical > 0 and norms[i] > SPIKE_FACTOR * typical:
            spikes += 1
            worst = max(worst, norms[i] / typical)
    scan[1:] = [max(start, len(norms)), spikes, worst]
    if not spikes:
        return None
    return Finding("grad_spike", "warning", "Gradient-norm spikes",
                   f"{spikes} step(s) with a grad norm over {SPIKE_FACTOR:g}x the recent median (worst {worst:.0f}x)",
                   _stability_suggestions(config, spikes=True))


# --- suggestions, with the edits computed from the run's own config ------------------------------------
def _value(config: Config | None, key: str, fallback: Any = None) -> Any:
    return fallback if config is None else get_value(config, key)


def _memory_suggestions(model: RunModel, config: Config | None, message: str) -> tuple[Suggestion, ...]:
    """The estimator's remedies for this run's config, against the memory the run had: the capacity
    the error names, else the peak measured before it died (else below the estimated peak)."""
    found = []
    if config is not None:
        device = (model.started or {}).get("device") or {}
        gpu_count = int(device.get("count") or 1) if device.get("type") == "cuda" else (0 if device else None)
        measured = model.latest("gpu_mem_peak_reserved")
        found = memory_remedies(config, message, gpu_count, int(measured) if measured else None)
    if not found:  # no config, or a model the estimator cannot size: the general advice
        return (Suggestion(SUGGESTIONS["oom"]),)
    return tuple(Suggestion(s.title, dict(s.changes)) for s in found)


def _stability_suggestions(config: Config | None, flat: bool = False, spikes: bool = False) -> tuple[Suggestion, ...]:
    lr = _value(config, "training.learning_rate", 5e-5)
    warmup = _value(config, "training.warmup_steps", 0)
    clip = _value(config, "training.max_grad_norm", 1.0)
    changes: dict[str, Any] = {"training.learning_rate": float(f"{lr / 2:.3g}")}
    parts = [f"learning rate {lr:g}->{lr / 2:.3g}"]
    # warmup_steps below 1 is a fraction of the run; 0.1 (a tenth) is the usual recommendation.
    if isinstance(warmup, (int, float)) and warmup < 1 and warmup < 0.1:
        changes["training.warmup_steps"] = 0.1
        parts.append("warm-up over the first 10% of steps")
    if not clip or clip > 1.0:
        changes["training.max_grad_norm"] = 1.0
        parts.append("clip gradients at norm 1.0")
    out = [Suggestion("Steadier updates: " + ", ".join(parts), changes)]
    if config is not None and config.training.fp16:
        out.append(Suggestion("Use bf16 instead of fp16 (same memory, far wider range) if the GPU supports it",
                              {"training.fp16": False, "training.bf16": True}))
    if flat:
        out.append(Suggestion("If the loss was flat from the first step, the learning rate may instead be too low, "
                              "or the labels may be masked out: check the data format and the sample outputs"))
    if spikes:
        out.append(Suggestion("Watch the grad-norm plot: isolated spikes after clipping are harmless, "
                              "a rising trend means the run is diverging"))
    return tuple(out)


def _overfit_suggestions(config: Config | None, best_epoch: float | None) -> tuple[Suggestion, ...]:
    out = []
    eval_strategy = _value(config, "training.eval_strategy", "steps")
    early: dict[str, Any] = {"training.early_stopping_patience": 3, "training.load_best_model_at_end": True,
                             "training.metric_for_best_model": "eval_loss"}
    if eval_strategy in ("steps", "epoch"):
        # load_best_model_at_end needs saves on the evaluation schedule.
        early["training.save_strategy"] = eval_strategy
        if eval_strategy == "steps":
            early["training.save_steps"] = _value(config, "training.eval_steps", 500)
    out.append(Suggestion("Stop early: end after 3 evaluations without improvement and keep the best checkpoint",
                          early))
    epochs = _value(config, "training.num_train_epochs", None)
    if best_epoch is not None and epochs and best_epoch < epochs:
        fewer = max(1.0, float(math.ceil(best_epoch)))
        if fewer < epochs:
            out.append(Suggestion(f"Fewer epochs: {epochs:g}->{fewer:g} (the eval loss was best at epoch {best_epoch:.2f})",
                                  {"training.num_train_epochs": fewer}))
    decay = _value(config, "training.weight_decay", 0.0)
    regular: dict[str, Any] = {"training.weight_decay": max(0.1, decay)} if decay < 0.1 else {}
    if config is not None and config.lora.enabled and config.lora.lora_dropout < 0.1:
        regular["lora.lora_dropout"] = 0.1
    if regular:
        out.append(Suggestion("More regularisation: weight decay 0.1" + (", LoRA dropout 0.1" if "lora.lora_dropout" in regular else ""),
                              regular))
    return tuple(out)
