"""GPU memory estimate of a training config, before anything is loaded.

    est = estimate(config, budget_bytes=24 * 2**30)
    est.peak_bytes, est.phase, est.components, est.suggestions

Pure Python: no torch. Architecture numbers come from a local config.json, the Hugging Face cache,
a built-in table or the from-scratch fields (`architecture`); exact parameter counts from `params`;
memory components and phases from `memory`; suggestions from `suggest`; earlier measured peaks
from `calibration`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from runner.schema import Config
from runner.target import target_cuda

from .architecture import Architecture, EstimateError, UnknownModel, resolve
from .calibration import last_measured_peak, memory_signature
from .memory import Component, breakdown, settings
from .params import Layout, layout
from .suggest import Suggestion, suggest, verdict


@dataclass
class Estimate:
    peak_bytes: int  # per GPU, at the largest phase
    phase: str  # "forward" | "backward" | "optimizer step"
    components: list[Component]  # at that phase; they sum to peak_bytes
    phases: dict[str, int]
    params_total: int
    params_trainable: int
    arch_source: str
    architecture: Architecture
    notes: list[str] = field(default_factory=list)
    suggestions: list[Suggestion] = field(default_factory=list)
    budget_bytes: int | None = None
    seq_tokens: int = 0  # the sequence length activations are sized for
    seq_source: str = "max_seq_length"  # or "longest row in the data" (from `tunedeck data`)

    @property
    def verdict(self) -> str | None:
        return verdict(self.peak_bytes, self.budget_bytes) if self.budget_bytes else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (also what the runner records in its run_started event)."""
        return {
            "peak_bytes": self.peak_bytes, "phase": self.phase, "phases": self.phases,
            "components": [asdict(c) for c in self.components], "params_total": self.params_total,
            "params_trainable": self.params_trainable, "arch_source": self.arch_source, "notes": self.notes,
            "budget_bytes": self.budget_bytes, "verdict": self.verdict,
            "suggestions": [asdict(sug) for sug in self.suggestions],
        }


@lru_cache(maxsize=64)
def _layout(arch: Architecture) -> Layout:
    return layout(arch)


def estimate(config: Config, budget_bytes: int | None = None, gpu_count: int | None = None,
             data_lengths: dict[str, Any] | None = None) -> Estimate:
    """Peak memory per GPU for training `config`; with a budget, also ranked suggestions.

    Raises UnknownModel when the architecture cannot be found offline, EstimateError for a
    config that cannot be estimated (LoRA targets matching nothing, k-bit without LoRA).
    gpu_count (GPUs available) lets suggestions propose sharding over more of them; it is also what
    "this machine has a GPU" means for launch.device = "auto" (runner.target), and a CPU target gets
    no suggestion that needs CUDA.
    """
    arch = resolve(config)
    lay = _layout(arch)
    s = settings(config)
    seq_source = "max_seq_length"
    # data_lengths (runner.data_lengths, measured by `tunedeck data`): with dynamic padding and no packing
    # no batch is longer than the data's longest row, so activations are sized for that row instead.
    longest = int((data_lengths or {}).get("max") or 0)
    if longest and s["data.padding"] == "longest" and not s["data.packing"] and longest < s["data.max_seq_length"]:
        s["data.max_seq_length"] = longest
        seq_source = "longest row in the data"
    result = breakdown(arch, lay, s)
    notes = list(result.notes)
    if seq_source != "max_seq_length":
        notes = [n for n in notes if "padded to max_seq_length" not in n]
        notes.append(f"activations sized for the data's longest row ({longest} tokens, measured by `tunedeck data`) "
                     f"instead of max_seq_length ({config.data.max_seq_length})")
    est = Estimate(result.peak_bytes, result.phase, result.components, result.phases, result.params_total,
                   result.params_trainable, arch.source, arch, notes, budget_bytes=budget_bytes,
                   seq_tokens=int(s["data.max_seq_length"]), seq_source=seq_source)
    if budget_bytes:
        est.suggestions = suggest(s, est.peak_bytes, budget_bytes,
                                  lambda changed: breakdown(arch, lay, changed).peak_bytes, gpu_count,
                                  cuda=target_cuda(config, machine_cuda=bool(gpu_count)))
    return est


def estimate_for(config: Config, budget_bytes: int | None = None, gpu_count: int | None = None) -> Estimate:
    """What every view shows (the editor's gauge, the launch dialog, `tunedeck estimate`, diagnosis):
    `estimate` with the data lengths `tunedeck data` recorded for this data set-up, when there are any."""
    from runner.data_lengths import lookup

    return estimate(config, budget_bytes, gpu_count, lookup(config))


def remedies(config: Config, budget_bytes: int | None = None, gpu_count: int | None = None, *,
             out_of_memory: bool = False) -> list[Suggestion]:
    """The memory remedies for `config`: the ranked suggestions the gauge lists against `budget_bytes`.

    `out_of_memory`: the run already died for lack of memory, so memory must fall even where the
    estimate says it fits: the budget is then at most the estimated peak (without a budget, it is
    the estimated peak). Raises EstimateError / UnknownModel like `estimate`.
    """
    if out_of_memory:
        peak = estimate_for(config, None, gpu_count).peak_bytes
        budget_bytes = min(budget_bytes, peak) if budget_bytes else peak
    if not budget_bytes:
        return []
    return estimate_for(config, budget_bytes, gpu_count).suggestions


def apply_changes(config: Config, changes: dict[str, Any]) -> Config:
    """A validated copy of `config` with a suggestion's "section.key" changes applied."""
    data = config.model_dump()
    for key, value in changes.items():
        section, name = key.split(".", 1)
        data[section][name] = value
    return Config.model_validate(data)


__all__ = [
    "Architecture", "Component", "Estimate", "EstimateError", "Suggestion", "UnknownModel", "apply_changes",
    "estimate", "estimate_for", "last_measured_peak", "memory_signature", "remedies", "verdict",
]
