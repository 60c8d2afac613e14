"""Optimizer state per trainable parameter for every `training.optim` transformers accepts."""

from __future__ import annotations

from dataclasses import dataclass

FP32 = 4
BNB_BLOCK = 256  # bitsandbytes 8-bit optimizers: one fp32 absmax per 256-value block
TORCHAO_4BIT_BLOCK = 128  # torchao 4-bit AdamW: one fp32 scale per 128 values
EIGHT_BIT = 1 + FP32 / BNB_BLOCK  # bytes per 8-bit state value, its block scale included
FOUR_BIT = 0.5 + FP32 / TORCHAO_4BIT_BLOCK  # bytes per 4-bit state value, its block scale included


@dataclass(frozen=True)
class OptimSpec:
    states: float  # full-size state tensors per trainable parameter (Adam: 2 moments)
    state_bytes: float | None  # bytes per state value; None = the parameter's own dtype (torch optimizers)
    paged: bool = False  # bitsandbytes paged: state lives in unified memory and can be evicted to CPU
    factored: bool = False  # Adafactor-style: second moment kept as row + column vectors per matrix
    step_temp: float = 0.0  # extra full-size temporaries during the step (foreach AdamW builds one list)
    note: str = ""


_TORCH_ADAM = OptimSpec(2, None, step_temp=1)
_BNB8_ADAM = OptimSpec(2, EIGHT_BIT)
_APPROX = "state size approximated as AdamW's (an upper bound for this low-rank optimizer)"

OPTIMIZERS: dict[str, OptimSpec] = {
    "adamw_torch": _TORCH_ADAM,
    "adamw_torch_fused": OptimSpec(2, None),  # fused kernel: no temporaries
    "adamw_torch_xla": OptimSpec(2, None),
    "adamw_torch_npu_fused": OptimSpec(2, None),
    "adamw_anyprecision": OptimSpec(2, FP32),
    "adamw_torch_4bit": OptimSpec(2, FOUR_BIT),
    "adamw_torch_8bit": OptimSpec(2, EIGHT_BIT),
    "stable_adamw": OptimSpec(2, None),
    "grokadamw": OptimSpec(3, None, note="keeps a gradient EMA beside Adam's two moments"),
    "ademamix": OptimSpec(3, None),  # two first moments (fast, slow) and a second moment
    "adafactor": OptimSpec(0, FP32, factored=True),
    "adalomo": OptimSpec(0, FP32, factored=True),
    "lomo": OptimSpec(0, None, note="LOMO applies updates during backward; no optimizer state"),
    "sgd": OptimSpec(0, None),  # transformers' sgd uses no momentum buffer
    "adagrad": OptimSpec(1, None),
    "rmsprop": OptimSpec(1, None),
    "schedule_free_adamw": OptimSpec(2, None),
    "schedule_free_radam": OptimSpec(2, None),
    "schedule_free_sgd": OptimSpec(1, None),
    "adamw_bnb_8bit": _BNB8_ADAM,
    "adamw_8bit": _BNB8_ADAM,
    "ademamix_8bit": OptimSpec(3, EIGHT_BIT),
    "lion_8bit": OptimSpec(1, EIGHT_BIT),  # Lion keeps a single momentum
    "lion_32bit": OptimSpec(1, FP32),
    "rmsprop_bnb": OptimSpec(1, FP32),
    "rmsprop_bnb_8bit": OptimSpec(1, EIGHT_BIT),
    "rmsprop_bnb_32bit": OptimSpec(1, FP32),
    "paged_adamw_32bit": OptimSpec(2, FP32, paged=True),
    "paged_adamw_8bit": OptimSpec(2, EIGHT_BIT, paged=True),
    "paged_ademamix_32bit": OptimSpec(3, FP32, paged=True),
    "paged_ademamix_8bit": OptimSpec(3, EIGHT_BIT, paged=True),
    "paged_lion_32bit": OptimSpec(1, FP32, paged=True),
    "paged_lion_8bit": OptimSpec(1, EIGHT_BIT, paged=True),
}
for _name in ("galore_adamw", "galore_adamw_layerwise", "galore_adafactor", "galore_adafactor_layerwise",
              "apollo_adamw", "apollo_adamw_layerwise"):
    OPTIMIZERS[_name] = OptimSpec(2, None, note=_APPROX)
for _name in ("galore_adamw_8bit", "galore_adamw_8bit_layerwise"):
    OPTIMIZERS[_name] = OptimSpec(2, EIGHT_BIT, note=_APPROX)


def spec(name: str) -> OptimSpec:
    return OPTIMIZERS.get(name, _TORCH_ADAM)


def is_32bit_state(name: str) -> bool:
    """Whether switching to an 8-bit optimizer would shrink the state."""
    s = spec(name)
    return s.states > 0 and (s.state_bytes is None or s.state_bytes >= 2)
