"""Memory components that must move together with the settings that drive them, and the words
that say why (written from the mutation benchmark's survivors in runner/estimate/memory.py)."""

from __future__ import annotations

import pytest

from fixtures.estimates import cfg, empty_hub_cache  # noqa: F401 (an autouse fixture)
from runner.estimate import Estimate, estimate

MiB = 1024**2


def comp(est: Estimate, name: str):
    return next(c for c in est.components if c.name == name)


def test_the_three_moments_of_a_step_are_named() -> None:
    assert set(estimate(cfg()).phases) == {"forward", "backward", "optimizer step"}


def test_nccl_buffers_only_with_more_than_one_process() -> None:
    one = comp(estimate(cfg()), "CUDA context")
    two = comp(estimate(cfg(launch__num_processes=2)), "CUDA context")
    assert two.bytes > one.bytes and "NCCL" in two.detail and "NCCL" not in one.detail


def test_ddp_says_why_its_gradients_double() -> None:
    est = estimate(cfg(lora__enabled=True, launch__num_processes=2, training__gradient_accumulation_steps=2))
    assert "doubled by DDP" in comp(est, "gradients").detail
    assert any("2 processes, ddp" in n and "replicated" in n for n in est.notes)


def test_lora_adapters_in_fp32_get_a_16_bit_autocast_copy() -> None:
    assert "16-bit autocast copy" in comp(estimate(cfg(lora__enabled=True)), "trainable weights").detail
    plain = cfg(lora__enabled=True, training__bf16=False, launch__mixed_precision="no")
    assert "autocast" not in comp(estimate(plain), "trainable weights").detail


def test_deepspeed_keeps_fp32_master_weights_for_16_bit_training() -> None:
    est = estimate(cfg(launch__strategy="deepspeed", launch__zero_stage=2, launch__num_processes=2))
    assert "fp32 master copy" in comp(est, "trainable weights").detail
    assert any("deepspeed ZeRO-2" in n and "sharded" in n for n in est.notes)


def test_fsdp_shards_lora_weights_further_with_more_processes() -> None:
    def trainable(n: int) -> int:
        return comp(estimate(cfg(lora__enabled=True, launch__strategy="fsdp", launch__num_processes=n)),
                    "trainable weights").bytes

    assert trainable(8) < trainable(4) < trainable(2)


def test_8bit_adam_state_is_half_of_bf16_adamw_state() -> None:
    # full fine-tuning of bf16 weights: AdamW keeps its two moments in bf16, 8-bit Adam in about one byte each
    full = comp(estimate(cfg(training__optim="adamw_torch")), "optimizer state").bytes
    small = comp(estimate(cfg(training__optim="adamw_bnb_8bit")), "optimizer state").bytes
    assert small * 2 == pytest.approx(full, rel=0.03)  # + the 8-bit blocks' scales
