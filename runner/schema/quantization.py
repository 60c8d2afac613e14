"""[quantization]: loading the frozen base model in 4 or 8 bits (bitsandbytes `BitsAndBytesConfig`)."""

from __future__ import annotations

from typing import Literal

from ._field import Section, setting

FOUR_BIT = "quantization.load_in_4bit"


class QuantizationSection(Section):
    load_in_4bit: bool = setting(
        False,
        label="Load in 4-bit",
        what="Store the frozen base weights in 4 bits (QLoRA). Needs an NVIDIA GPU, bitsandbytes and "
        "LoRA adapters, since 4-bit weights themselves cannot be trained.",
        up="On: base weights take about a quarter of their 16-bit memory, so a 7B model fits on a 12-16 "
        "GB card; steps are somewhat slower because weights are dequantised on the fly.",
        down="Off: weights stay in 16 or 32 bits, faster per step and slightly more accurate, but much "
        "larger.",
        typical="true for 7B+ models on a single consumer GPU; false when memory is plentiful",
    )
    load_in_8bit: bool = setting(
        False,
        label="Load in 8-bit",
        what="Store the frozen base weights in 8 bits (LLM.int8). Needs an NVIDIA GPU, bitsandbytes "
        "and LoRA adapters.",
        up="On: base weights take about half their 16-bit memory, with quality closer to 16-bit than "
        "4-bit.",
        down="Off: full-size weights, usually faster; 8-bit matmuls are slower than 16-bit ones.",
        typical="false; 4-bit (NF4) is the more common memory saver",
    )
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = setting(
        "nf4",
        label="4-bit type",
        applies=FOUR_BIT,
        what="The 4-bit number format. NF4 spaces its levels for normally distributed weights; FP4 is "
        "a plain 4-bit float.",
        up="NF4 keeps more accuracy for pretrained weights.",
        down="FP4 is rarely better; keep NF4 unless comparing.",
        typical="nf4",
    )
    bnb_4bit_compute_dtype: Literal["bfloat16", "float16", "float32"] = setting(
        "bfloat16",
        label="4-bit compute dtype",
        applies=FOUR_BIT,
        what="The format 4-bit weights are expanded to for each matrix multiply.",
        up="Float32 compute is most accurate but slow and memory hungry.",
        down="Bfloat16/float16 compute is fast; match it to your mixed-precision setting.",
        typical="bfloat16 on Ampere or newer, float16 on older GPUs",
    )
    bnb_4bit_use_double_quant: bool = setting(
        False,
        label="Double quantisation",
        applies=FOUR_BIT,
        what="Also quantise the per-block scaling constants, saving roughly 0.4 bits per weight.",
        up="On: about 3 GB less for a 70B model at negligible quality cost.",
        down="Off: slightly simpler and marginally faster dequantisation.",
        typical="true for QLoRA on large models",
    )
