"""Concrete config changes that bring the estimate under a memory budget, or use spare memory for speed.

Each candidate is re-estimated with the same model, so its number is what `estimate` would say
after the change. Candidates are ranked by what they cost: changes that keep the training recipe
(batch split, checkpointing) come before ones that change results (shorter sequences, 4-bit, LoRA).

These are the project's only memory remedies: the gauge lists them, `tunedeck estimate` prints them,
and a run that died out of memory is told the same ones (runner.estimate.remedies). For a CPU target
(runner.target) nothing that needs CUDA is offered, and no larger batch: a CPU has no spare GPU
memory to turn into speed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from runner.target import BNB_OPTIMIZERS

from . import optimizers

TIGHT_MARGIN = 0.10  # "tight": within 10% of the budget, where fragmentation or other processes can tip it over
SPEED_HEADROOM = 0.60  # below 60% of the budget, spare memory is worth spending on speed
MAX_BATCH_GROWTH = 8  # past 8x the per-GPU batch, GPU throughput gains are small
MIN_SEQ = 128


@dataclass
class Suggestion:
    title: str
    changes: dict[str, Any]  # "section.key" -> new value
    peak_bytes: int
    fits: bool = True  # the new peak is within the budget
    kind: str = "memory"  # "memory": to fit; "speed": to train faster with memory to spare
    notes: list[str] = field(default_factory=list)


def verdict(peak_bytes: int, budget_bytes: int) -> str:
    """"fits" with a margin, "tight" within the last 10% of the budget, else "does not fit"."""
    if peak_bytes <= budget_bytes * (1 - TIGHT_MARGIN):
        return "fits"
    if peak_bytes <= budget_bytes:
        return "tight"
    return "does not fit"


Estimator = Callable[[dict[str, Any]], int]  # settings -> peak bytes (raises EstimateError when impossible)


def suggest(s: dict[str, Any], peak: int, budget: int, run: Estimator, gpu_count: int | None = None,
            cuda: bool = True) -> list[Suggestion]:
    """Ranked changes: to fit when `peak` is tight or over `budget`, to speed up with memory to spare.

    `cuda`: whether the run targets CUDA GPUs; for a CPU, changes that need CUDA are left out.
    """
    status = verdict(peak, budget)
    if status != "fits":
        return _to_fit(s, peak, budget, run, gpu_count, cuda)
    if peak < budget * SPEED_HEADROOM:
        return _to_speed_up(s, budget, run, cuda)
    return []


def needs_cuda(changes: dict[str, Any]) -> bool:
    """Whether a suggestion's changes only work on a CUDA GPU (bitsandbytes, 16-bit mixed precision,
    flash attention, sharding across GPUs)."""
    return bool(changes.get("quantization.load_in_4bit") or changes.get("quantization.load_in_8bit")
                or changes.get("training.bf16") or changes.get("training.fp16")
                or changes.get("training.optim") in BNB_OPTIMIZERS
                or changes.get("model.attn_implementation") == "flash_attention_2"
                or changes.get("launch.strategy") in ("fsdp", "deepspeed"))


def _try(run: Estimator, s: dict[str, Any], changes: dict[str, Any]) -> int | None:
    try:
        return run({**s, **changes})
    except ValueError:
        return None  # the change makes an impossible combination


def _memory_candidates(s: dict[str, Any], budget: int, run: Estimator, gpu_count: int | None) -> list[tuple[int, str, dict[str, Any]]]:
    """(cost rank, title, changes) for every change that could lower memory here."""
    out: list[tuple[int, str, dict[str, Any]]] = []
    b = int(s["training.per_device_train_batch_size"])
    acc = int(s["training.gradient_accumulation_steps"])
    world = int(s["launch.num_processes"]) * int(s["launch.num_machines"])
    lora, kbit = s["lora.enabled"], s["quantization.load_in_4bit"] or s["quantization.load_in_8bit"]
    if s["model.attn_implementation"] == "eager":
        out.append((0, "Use fused attention (sdpa) instead of eager", {"model.attn_implementation": "sdpa"}))
    if b > 1:
        smaller = [d for d in range(b - 1, 0, -1) if b % d == 0]  # divisors keep the effective batch exact
        pick = next((d for d in smaller if (_try(run, s, _batch(d, b, acc)) or budget + 1) <= budget * (1 - TIGHT_MARGIN)),
                    smaller[-1])
        out.append((1, f"Batch per GPU {b} -> {pick} with gradient accumulation {acc} -> {acc * b // pick} "
                       f"(same effective batch)", _batch(pick, b, acc)))
    if not s["training.gradient_checkpointing"]:
        out.append((2, "Turn on gradient checkpointing (steps ~20-30% slower)", {"training.gradient_checkpointing": True}))
    if not s["training.bf16"] and not s["training.fp16"]:
        changes: dict[str, Any] = {"training.bf16": True}
        if s["model.dtype"] in ("float32", "auto") and not kbit:
            changes["model.dtype"] = "bfloat16"
        out.append((2, "Train in bf16 mixed precision" + (" with bfloat16 weights" if "model.dtype" in changes else ""),
                    changes))
    if optimizers.is_32bit_state(s["training.optim"]):
        new = "paged_adamw_8bit" if lora else "adamw_bnb_8bit"
        out.append((3, f"Use the 8-bit optimizer {new} instead of {s['training.optim']}", {"training.optim": new}))
    if gpu_count and gpu_count > world and not lora:
        out.append((4, f"Shard across {gpu_count} GPUs with FSDP", {"launch.num_processes": gpu_count,
                                                                   "launch.strategy": "fsdp"}))
    elif world > 1 and s["launch.strategy"] in ("none", "ddp") and not lora:
        out.append((4, f"Shard the model across the {world} processes with FSDP instead of replicating it",
                    {"launch.strategy": "fsdp"}))
    if lora and not kbit:
        out.append((5, "Load the base model in 4-bit NF4 (QLoRA)", _four_bit()))
    seq = int(s["data.max_seq_length"])
    if seq > MIN_SEQ:
        new_seq = seq // 2
        while new_seq > MIN_SEQ and (_try(run, s, {"data.max_seq_length": new_seq}) or budget + 1) > budget * (1 - TIGHT_MARGIN):
            new_seq //= 2
        new_seq = max(new_seq, MIN_SEQ)
        out.append((6, f"Shorten max_seq_length {seq} -> {new_seq} (longer examples get cut)",
                    {"data.max_seq_length": new_seq}))
    if not lora:
        out.append((7, "Train LoRA adapters (all linear layers) instead of every weight",
                    {"lora.enabled": True, "lora.target_modules": "all-linear"}))
        out.append((8, "QLoRA: LoRA adapters on a 4-bit base model",
                    {"lora.enabled": True, "lora.target_modules": "all-linear", **_four_bit()}))
    return out


def _batch(new: int, old: int, acc: int) -> dict[str, Any]:
    return {"training.per_device_train_batch_size": new, "training.gradient_accumulation_steps": acc * old // new}


def _four_bit() -> dict[str, Any]:
    return {"quantization.load_in_4bit": True, "quantization.load_in_8bit": False,
            "quantization.bnb_4bit_quant_type": "nf4", "quantization.bnb_4bit_use_double_quant": True}


def _to_fit(s: dict[str, Any], peak: int, budget: int, run: Estimator, gpu_count: int | None,
            cuda: bool = True) -> list[Suggestion]:
    found: list[tuple[int, int, Suggestion]] = []
    candidates = [c for c in _memory_candidates(s, budget, run, gpu_count) if cuda or not needs_cuda(c[2])]
    for cost, title, changes in candidates:
        new = _try(run, s, changes)
        if new is None or new >= peak:
            continue
        found.append((cost, new, Suggestion(title, changes, new, fits=new <= budget)))
    # changes that reach "fits" first (cheapest first), then "tight", then the rest by how much they save
    found.sort(key=lambda t: (verdict(t[1], budget) != "fits", verdict(t[1], budget) == "does not fit",
                              t[0] if t[1] <= budget else 0, t[1]))
    ranked = [sug for _, _, sug in found]
    if not any(sug.fits and verdict(sug.peak_bytes, budget) == "fits" for sug in ranked):
        combo = _combine(s, peak, budget, run, sorted(found, key=lambda t: t[0]))
        if combo is not None:
            ranked.insert(0, combo)
    return ranked


def _combine(s: dict[str, Any], peak: int, budget: int, run: Estimator,
             found: list[tuple[int, int, Suggestion]]) -> Suggestion | None:
    """Apply the cheapest changes one after another until the estimate fits."""
    changes: dict[str, Any] = {}
    titles: list[str] = []
    current = peak
    for _, _, sug in found:
        if any(k in changes for k in sug.changes):
            continue  # e.g. LoRA and QLoRA both set lora.enabled
        new = _try(run, s, {**changes, **sug.changes})
        if new is None or new >= current:
            continue
        changes.update(sug.changes)
        titles.append(sug.title)
        current = new
        if verdict(current, budget) == "fits":
            break
    if len(titles) < 2:
        return None
    return Suggestion("Combine: " + "; ".join(titles), changes, current, fits=current <= budget)


def _to_speed_up(s: dict[str, Any], budget: int, run: Estimator, cuda: bool = True) -> list[Suggestion]:
    out: list[Suggestion] = []

    def add(title: str, changes: dict[str, Any]) -> None:
        new = _try(run, s, changes)
        if new is not None and verdict(new, budget) == "fits":
            out.append(Suggestion(title, changes, new, fits=True, kind="speed"))

    if s["training.gradient_checkpointing"]:
        add("Turn gradient checkpointing off: no recomputation, steps ~20-30% faster",
            {"training.gradient_checkpointing": False})
    b = int(s["training.per_device_train_batch_size"])
    acc = int(s["training.gradient_accumulation_steps"])
    best: dict[str, Any] | None = None
    factor = 2
    while cuda and factor <= MAX_BATCH_GROWTH:  # a CPU gains nothing from spare GPU memory
        if acc > 1 and acc % factor:
            break
        changes = {"training.per_device_train_batch_size": b * factor}
        if acc > 1:
            changes["training.gradient_accumulation_steps"] = acc // factor
        new = _try(run, s, changes)
        if new is None or verdict(new, budget) != "fits":
            break
        best = changes
        factor *= 2
    if best:
        new_b = best["training.per_device_train_batch_size"]
        same = "training.gradient_accumulation_steps" in best
        add(f"Batch per GPU {b} -> {new_b}" + (f" with accumulation {acc} -> {best['training.gradient_accumulation_steps']}"
                                               " (same effective batch): fewer, fuller steps" if same else
                                               " (larger effective batch; consider a higher learning rate)"), best)
    if s["quantization.load_in_4bit"] or s["quantization.load_in_8bit"]:
        add("Load the base model in 16-bit instead of k-bit: no dequantization, faster steps",
            {"quantization.load_in_4bit": False, "quantization.load_in_8bit": False})
    return out
