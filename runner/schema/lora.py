"""[lora]: low-rank adapters (peft `LoraConfig`) trained instead of, or on top of, frozen weights."""

from __future__ import annotations

from typing import Literal, Union

from ._field import Section, setting

ON = "lora.enabled"


class LoraSection(Section):
    enabled: bool = setting(
        False,
        label="Use LoRA",
        what="Train small low-rank adapter matrices beside the frozen base weights instead of updating "
        "every weight (parameter-efficient fine-tuning). Required with 4-bit or 8-bit loading.",
        up="On: gradients and optimizer state exist only for the adapters (often under 1% of the "
        "model), so memory drops sharply and the saved result is a few megabytes.",
        down="Off: full fine-tuning updates every weight; most expressive, but needs memory for "
        "gradients and optimizer state of the whole model (about 16 bytes per parameter with AdamW).",
        typical="true for 1B+ models on a single GPU; false for small models or pre-training",
    )
    r: int = setting(
        16,
        label="Rank r",
        applies=ON,
        ge=1,
        le=4096,
        what="The rank of each adapter: how many directions the update can change per layer.",
        up="A higher rank gives the adapter more capacity to learn new behaviour, with more "
        "trainable parameters and memory.",
        down="A lower rank is smaller and faster and regularises more; it may underfit harder tasks.",
        typical="8-64; 16 is a good start",
    )
    lora_alpha: int = setting(
        32,
        label="Alpha",
        applies=ON,
        ge=1,
        le=65536,
        what="Scale of the adapter's contribution: the update is multiplied by lora_alpha / r (or "
        "lora_alpha / sqrt(r) with rsLoRA).",
        up="A larger alpha strengthens the adapter's effect, much like a higher learning rate for it.",
        down="A smaller alpha makes the adapter's updates gentler.",
        typical="2 x r (e.g. r=16, alpha=32)",
    )
    lora_dropout: float = setting(
        0.05,
        label="LoRA dropout",
        applies=ON,
        ge=0.0,
        lt=1.0,
        what="Dropout applied to the input of each adapter during training.",
        up="More dropout regularises the adapter, helpful on small datasets that overfit.",
        down="Less or none learns faster; fine for large datasets.",
        typical="0.0-0.1; 0.05 is common",
    )
    target_modules: Union[Literal["all-linear"], list[str]] = setting(
        "all-linear",
        label="Target modules",
        applies=ON,
        what="Which layers get adapters: 'all-linear' for every linear layer except the output head, "
        "or a list of module names such as q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, "
        "down_proj (c_attn, c_proj, c_fc for gpt2).",
        up="Adapting more modules (all-linear) usually gives the best quality, with more trainable "
        "parameters.",
        down="Adapting only attention projections (q_proj, v_proj) is cheapest, and often enough "
        "for light style changes.",
        typical="all-linear; or [q_proj, v_proj] for the smallest adapters",
    )
    bias: Literal["none", "all", "lora_only"] = setting(
        "none",
        label="Train biases",
        applies=ON,
        what="Whether bias vectors are trained along with the adapters.",
        up="'all' or 'lora_only' train biases too: slightly more capacity, and the adapter no longer "
        "restores the base model exactly when disabled.",
        down="'none' trains only adapter matrices, the usual choice.",
        typical="none",
    )
    use_rslora: bool = setting(
        False,
        label="rsLoRA",
        applies=ON,
        what="Rank-stabilised LoRA: scale updates by alpha / sqrt(r) instead of alpha / r, so high "
        "ranks keep learning effectively.",
        up="On: helps when r is large (64+), where plain scaling makes updates too small.",
        down="Off: standard LoRA scaling, fine for small ranks.",
        typical="false; true with r >= 64",
    )
    use_dora: bool = setting(
        False,
        label="DoRA",
        applies=ON,
        what="Weight-decomposed LoRA: learn a magnitude and a direction for each adapted weight.",
        up="On: often a little better quality than LoRA at the same rank, but slower and uses more "
        "memory per step.",
        down="Off: plain LoRA, faster.",
        typical="false",
    )
    merge_after_training: bool = setting(
        False,
        label="Save merged model",
        applies=ON,
        what="After training, also save a copy of the model with the adapters folded into the base "
        "weights (final/merged), ready for tools that do not understand adapters.",
        up="On: a standalone model you can serve directly; costs the disk space of a full model.",
        down="Off: only the small adapter is saved; load it on top of the base model with peft.",
        typical="false while experimenting, true for the run you ship",
    )
