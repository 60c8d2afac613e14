"""The estimator's figures worked out by hand on a one-block llama, term by term and phase by phase:
weights, gradients, optimizer state, activations, logits, DDP buckets, FSDP / ZeRO sharding per world
size, LoRA, 4-bit and 8-bit storage, and the words each component carries. tests/test_estimate_terms.py
holds the corrected terms of issue #14; this file pins the rest (issue #20)."""

from __future__ import annotations

import pytest

from fixtures.estimates import SEQ, TINY, comp, empty_hub_cache, tiny_configs  # noqa: F401 (an autouse fixture)
from runner.estimate import Estimate, estimate, verdict
from runner.estimate import optimizers
from runner.estimate.memory import (ALLOCATOR_OVERHEAD, CUDA_CONTEXT, NCCL_BUFFERS, WORKSPACE, _precision,
                                    builds_attention_mask, mixed_precision, settings)
from runner.estimate.architecture import from_config_json
from runner.schema import Config

# TINY (tests/fixtures/estimates.py): h 64, i 256, 4 heads of 16, one block, vocab 1000, untied head. Parameters:
#   block: q, k, v, o 4 x 64 x 64 + gate, up, down 3 x 64 x 256 = 65,536 linear weights + 2 norms x 64 = 65,664
#   embedding 64,000 + final norm 64 + head 64,000                                               = 193,728
PARAMS = 193_728
BLOCK = 65_664
BLOCK_LINEAR = 65_536
OTHER = PARAMS - BLOCK_LINEAR  # embeddings, norms, head: 128,192


@pytest.fixture
def tiny(tmp_path):
    return tiny_configs(tmp_path, optim="adamw_torch")


def detail(est: Estimate, name: str) -> str:
    return next(c.detail for c in est.components if c.name == name)


def total(dynamic: float, world: int = 1) -> int:
    return int(CUDA_CONTEXT + (NCCL_BUFFERS if world > 1 else 0) + dynamic * (1 + ALLOCATOR_OVERHEAD) + WORKSPACE)


# Activations of the tiny block (bf16, autocast, full fine-tune), per token: 3600 (tests/test_estimate_terms.py)
# + embedding output, final norm input and output 64 x (2 + 4 + 2) = 512.
ACT = SEQ * (3600 + 512)
LOGITS_FWD = SEQ * 1000 * (2 + 4 + 4)  # bf16 logits, their fp32 copy, the fp32 log-softmax output
LOGITS_BWD = SEQ * 1000 * 12  # log-softmax output, its gradient, the input gradient (fp32)
BWD_TEMP = 3 * SEQ * 256 * 2  # gradients of the widest intermediate (256 > q + 2 kv = 192), bf16


def test_full_fine_tune_every_phase_by_hand(tiny):
    est = estimate(tiny())
    weights, optim, temp = PARAMS * 2, PARAMS * 2 * 2, PARAMS * 2  # bf16 weights, 2 bf16 moments, foreach list
    assert est.phases == {
        "forward": total(weights + optim + ACT + LOGITS_FWD),
        "backward": total(weights + optim + ACT + LOGITS_BWD + BWD_TEMP),  # start of backward beats its end
        "optimizer step": total(weights + PARAMS * 2 + optim + temp),
    }
    assert est.phase == "backward" and est.peak_bytes == est.phases["backward"]
    assert (est.params_total, est.params_trainable) == (PARAMS, PARAMS)
    assert [(c.name, c.bytes) for c in est.components[:-1]] == [
        ("CUDA context", CUDA_CONTEXT), ("frozen weights", 0), ("trainable weights", weights), ("gradients", 0),
        ("optimizer state", optim), ("activations", ACT), ("logits & loss", LOGITS_BWD)]
    assert sum(c.bytes for c in est.components) == est.peak_bytes
    assert est.components[-1].name == "overhead"
    assert est.components[-1].bytes == est.peak_bytes - CUDA_CONTEXT - (weights + optim + ACT + LOGITS_BWD)
    assert detail(est, "CUDA context") == "driver context and kernels"
    assert detail(est, "frozen weights") == "none: every weight trains"
    assert detail(est, "trainable weights") == "0.2M params at 2 B"
    assert detail(est, "gradients") == "none yet (freed after each optimizer step)"
    assert detail(est, "optimizer state") == "adamw_torch: 2 state(s) x 2 B per trainable param"
    assert detail(est, "activations") == "1 blocks x 0.00 GiB"
    assert detail(est, "logits & loss") == "1 x 100 x 1,000 vocab"
    assert detail(est, "overhead").startswith("temporaries 0.00 GiB, allocator 6% of 0.00 GiB")
    assert not any(c.evictable for c in est.components)
    assert est.notes == ["activations assume every batch is padded to max_seq_length (the worst case)"]


# 8 tokens of a 10-word vocabulary: the small end of the tiny model, where the step can be the peak
SMALL = dict(arch={"vocab_size": 10}, data__max_seq_length=8)
P10 = PARAMS - 2 * 990 * 64  # 67,008 parameters with a 10-word embedding and head
ACT8 = 8 * (3600 + 512)
LOGITS8 = 8 * 10 * 12
TEMP8 = 3 * 8 * 256 * 2


def temporaries(est: Estimate) -> float:
    """The temporaries inside the overhead component: overhead = temp + 6% of (components + temp) + workspace."""
    named = sum(c.bytes for c in est.components[1:-1])
    return (est.components[-1].bytes - WORKSPACE - ALLOCATOR_OVERHEAD * named) / (1 + ALLOCATOR_OVERHEAD)


def test_the_optimizer_step_is_the_peak_with_a_foreach_temporary(tiny):
    est = estimate(tiny(**SMALL))
    weights, grads, optim, temp = P10 * 2, P10 * 2, P10 * 4, P10 * 2  # foreach AdamW: one more full-size list
    assert est.phases == {
        "forward": total(weights + optim + ACT8 + 8 * 10 * 10),
        "backward": total(weights + optim + grads + TEMP8),  # the end of backward: every gradient
        "optimizer step": total(weights + grads + optim + temp),
    }
    assert est.phase == "optimizer step"
    assert [(c.name, c.bytes) for c in est.components[:-1]] == [
        ("CUDA context", CUDA_CONTEXT), ("frozen weights", 0), ("trainable weights", weights),
        ("gradients", grads), ("optimizer state", optim), ("activations", 0), ("logits & loss", 0)]
    assert temporaries(est) == pytest.approx(temp, abs=2)
    assert detail(est, "gradients") == "2 B per trainable param"
    assert detail(est, "activations") == "freed before the step"
    assert detail(est, "logits & loss") == "freed before the step"


def test_paged_state_is_evictable(tiny):
    est = estimate(tiny(training__optim="paged_ademamix_32bit"))
    optim = PARAMS * 3 * 4
    assert comp(est, "optimizer state") == optim
    assert detail(est, "optimizer state") == ("paged_ademamix_32bit: 3 state(s) x 4 B per trainable param; "
                                              "paged: can move to CPU memory under pressure")
    assert sum(c.bytes for c in est.components if c.evictable) == optim
    assert [c.name for c in est.components if c.evictable] == ["optimizer state"]
    assert est.phases["optimizer step"] == total(PARAMS * 2 + PARAMS * 2 + optim)  # no step temporary


def test_accumulation_keeps_gradients_through_forward_and_backward(tiny):
    one, two = estimate(tiny()), estimate(tiny(training__gradient_accumulation_steps=2))
    grads = PARAMS * 2
    assert two.phases["forward"] - one.phases["forward"] == pytest.approx(grads * 1.06, abs=1)
    assert two.phases["backward"] - one.phases["backward"] == pytest.approx(grads * 1.06, abs=1)
    assert two.phases["optimizer step"] == one.phases["optimizer step"]
    assert comp(two, "gradients") == grads and detail(two, "gradients") == "2 B per trainable param"


def test_end_of_backward_holds_every_gradient(tiny):
    # a paged optimizer has no step temporary, so the end of backward (all gradients + temporaries) wins
    est = estimate(tiny(training__optim="paged_adamw_32bit", **SMALL))
    end = P10 * 2 + P10 * 8 + P10 * 2 + TEMP8  # every gradient; activations and logits freed
    assert est.phase == "backward" and est.phases["backward"] == total(end)
    assert comp(est, "gradients") == P10 * 2 and comp(est, "activations") == 0
    assert comp(est, "logits & loss") == 0
    assert temporaries(est) == pytest.approx(TEMP8, abs=2)


# ---- DDP, FSDP and ZeRO on the tiny model ------------------------------------------------------------
@pytest.mark.parametrize("procs,machines", [(1, 1), (2, 1), (8, 1), (2, 4)])
def test_ddp_on_the_tiny_model(tiny, procs, machines):
    world = procs * machines
    est = estimate(tiny(launch__num_processes=procs, launch__num_machines=machines, launch__strategy="ddp",
                        launch__main_process_ip="10.0.0.1" if machines > 1 else "", **SMALL))
    grads = P10 * 2 * (2 if world > 1 else 1)  # a bucket copy of every gradient to all-reduce
    assert est.phases["optimizer step"] == total(P10 * 2 + grads + P10 * 4 + P10 * 2, world)
    assert est.phase == "optimizer step"
    assert comp(est, "gradients") == grads and comp(est, "CUDA context") == CUDA_CONTEXT + (NCCL_BUFFERS if world > 1 else 0)
    if world > 1:
        assert detail(est, "gradients") == "2 B per trainable param, doubled by DDP's all-reduce buckets"
        assert detail(est, "CUDA context") == "driver context and kernels + NCCL buffers"
        assert f"{world} processes, ddp: per-GPU figures (replicated)" in est.notes
    else:
        assert detail(est, "gradients") == "2 B per trainable param"
        assert not any("processes" in n for n in est.notes)


def test_several_processes_without_a_strategy_are_ddp(tiny):
    plain = estimate(tiny(launch__num_processes=2, launch__strategy="none", **SMALL))
    ddp = estimate(tiny(launch__num_processes=2, launch__strategy="ddp", **SMALL))
    assert plain.phases == ddp.phases and "2 processes, ddp: per-GPU figures (replicated)" in plain.notes


@pytest.mark.parametrize("world", [1, 2, 8])
def test_fsdp_on_the_tiny_model(tiny, world):
    est = estimate(tiny(launch__num_processes=world, launch__strategy="fsdp", **SMALL))
    gathered = 2 * BLOCK * 2  # two whole bf16 blocks in flight
    weights = P10 * 2 / world + gathered
    optim, grads, temp = P10 * 4 / world, P10 * 2 / world, P10 * 2 / world
    assert est.phases["optimizer step"] == total(weights + grads + optim + temp, world)
    start = weights + optim + ACT8 + LOGITS8 + TEMP8
    end = weights + optim + grads + TEMP8
    assert est.phases["backward"] == total(max(start, end), world)
    assert comp(est, "trainable weights") == int(weights)
    assert detail(est, "trainable weights") == "0.1M params at 2 B; + 2 unsharded blocks in flight (0.00 GiB)"
    assert comp(est, "frozen weights") == 0
    if world > 1:
        assert f"{world} processes, fsdp: per-GPU figures (sharded)" in est.notes


@pytest.mark.parametrize("world", [1, 2, 8])
@pytest.mark.parametrize("zero", [1, 2, 3])
def test_zero_stages_on_the_tiny_model(tiny, world, zero):
    est = estimate(tiny(launch__num_processes=world, launch__strategy="deepspeed", launch__zero_stage=zero, **SMALL))
    params = P10
    weights = params * 2 / (world if zero == 3 else 1) + (2 * BLOCK * 2 if zero == 3 else 0)
    master = params * 4 / world  # fp32 master weights of 16-bit training, sharded from stage 1
    grads = params * 2 / (world if zero >= 2 else 1)
    optim = params * 4 / world
    assert est.phases["optimizer step"] == total(weights + master + grads + optim + params * 2 / world, world)
    assert comp(est, "trainable weights") == int(weights + master)
    assert comp(est, "optimizer state") == int(optim)
    assert detail(est, "trainable weights").startswith("0.1M params at 2 B + fp32 master copy")
    if world > 1:
        assert f"{world} processes, deepspeed ZeRO-{zero}: per-GPU figures (sharded)" in est.notes


def test_zero_stage_only_counts_under_deepspeed(tiny):
    ddp = estimate(tiny(launch__num_processes=2, launch__strategy="ddp", launch__zero_stage=3))
    plain = estimate(tiny(launch__num_processes=2, launch__strategy="ddp", launch__zero_stage=1))
    assert ddp.phases == plain.phases
    assert "master" not in detail(ddp, "trainable weights")


def test_deepspeed_keeps_no_master_copy_without_mixed_precision(tiny):
    est = estimate(tiny(training__bf16=False, launch__mixed_precision="no", launch__num_processes=2,
                        launch__strategy="deepspeed", launch__zero_stage=1))
    assert "master" not in detail(est, "trainable weights")
    assert comp(est, "trainable weights") == PARAMS * 2


# ---- LoRA, 4-bit and 8-bit ---------------------------------------------------------------------------
LORA = dict(lora__enabled=True, lora__r=8, lora__target_modules=["q_proj"], lora__lora_dropout=0.0)
ADAPTER = 8 * (64 + 64)  # lora_A 8 x 64 + lora_B 64 x 8


def test_lora_weights_gradients_and_state(tiny):
    est = estimate(tiny(training__optim="paged_ademamix_32bit", **LORA))
    assert (est.params_total, est.params_trainable) == (PARAMS + ADAPTER, ADAPTER)
    assert comp(est, "frozen weights") == PARAMS * 2
    assert detail(est, "frozen weights") == "0.00B base weights at 2 B"
    # fp32 adapters + the 16-bit copy autocast caches for forward and backward
    assert comp(est, "trainable weights") == ADAPTER * 4 + ADAPTER * 2
    assert detail(est, "trainable weights") == "0.0M params at 4 B + 16-bit autocast copy"
    assert comp(est, "optimizer state") == ADAPTER * 3 * 4


def test_lora_optimizer_step_drops_the_autocast_copy(tiny):
    # 10 tokens of a 10-word vocabulary: the optimizer step (no activations) is the peak
    est = estimate(tiny(lora__target_modules="all-linear", lora__enabled=True, lora__r=64, lora__lora_dropout=0.0,
                        **SMALL))
    adapters = 64 * (4 * (64 + 64) + 2 * (64 + 256) + (256 + 64))
    assert est.params_trainable == adapters
    assert est.phase == "optimizer step"
    assert comp(est, "trainable weights") == adapters * 4  # the cast copy is freed before the step
    # fp32 adapters, their fp32 gradients, two fp32 moments and the foreach temporary
    assert est.phases["optimizer step"] == total(P10 * 2 + adapters * 4 + adapters * 4 + adapters * 8 + adapters * 4)


def test_lora_state_of_a_torch_optimizer_is_fp32(tiny):
    est = estimate(tiny(**LORA))  # adamw_torch: moments in the parameter's dtype, fp32 for adapters
    assert comp(est, "optimizer state") == ADAPTER * 2 * 4
    assert detail(est, "optimizer state") == "adamw_torch: 2 state(s) x 4 B per trainable param"


def test_fsdp_gathers_lora_blocks_in_the_frozen_weights(tiny):
    est = estimate(tiny(launch__num_processes=2, launch__strategy="fsdp", **LORA))
    assert comp(est, "frozen weights") == PARAMS * 2 / 2 + 2 * BLOCK * 2
    assert detail(est, "frozen weights") == ("0.00B base weights at 2 B; + 2 unsharded blocks in flight (0.00 GiB)")
    assert comp(est, "trainable weights") == (ADAPTER * 4 + ADAPTER * 2) / 2
    assert "unsharded" not in detail(est, "trainable weights")


@pytest.mark.parametrize("double,per", [(False, 0.5 + 4 / 64), (True, 0.5 + 1 / 64 + 4 / (64 * 256))])
def test_four_bit_storage_by_hand(tiny, double, per):
    est = estimate(tiny(quantization__load_in_4bit=True, quantization__bnb_4bit_use_double_quant=double,
                        quantization__bnb_4bit_compute_dtype="bfloat16", **LORA))
    # packed 4-bit codes and block scales for the block linears; the rest upcast to fp32
    assert comp(est, "frozen weights") == int(BLOCK_LINEAR * per + OTHER * 4)
    assert detail(est, "frozen weights") == (f"0.00B linear weights at {per:.3f} B each (nf4), the rest at 4 B "
                                             "(embeddings, norms and head upcast to fp32 for k-bit training)")


def test_eight_bit_storage_by_hand(tiny):
    est = estimate(tiny(quantization__load_in_8bit=True, **LORA))
    rows = 4 * 64 + 2 * 256 + 64  # one fp32 scale per output row of every block linear
    assert comp(est, "frozen weights") == BLOCK_LINEAR + rows * 4 + OTHER * 4
    assert detail(est, "frozen weights") == ("0.00B linear weights in int8, the rest at 4 B "
                                             "(embeddings, norms and head upcast to fp32 for k-bit training)")


def test_kbit_dequantizes_the_largest_linear(tiny):
    # the dequantized 16-bit copy of the widest linear (64 x 256) lives during every matmul
    plain = estimate(tiny(**LORA))
    nf4 = estimate(tiny(quantization__load_in_4bit=True, quantization__bnb_4bit_compute_dtype="bfloat16", **LORA))
    assert plain.phase == nf4.phase == "backward"
    assert temporaries(plain) == pytest.approx(BWD_TEMP, abs=2)
    assert temporaries(nf4) == pytest.approx(BWD_TEMP + 64 * 256 * 2, abs=2)


def test_kbit_without_lora_says_how_to_fix_it(tiny):
    from runner.estimate import EstimateError

    with pytest.raises(EstimateError) as err:
        estimate(tiny(quantization__load_in_4bit=True))
    assert str(err.value) == "4-bit or 8-bit loading trains nothing without LoRA: set lora.enabled = true"


def test_unmatched_targets_are_noted(tiny):
    est = estimate(tiny(lora__enabled=True, lora__target_modules=["q_proj", "nothing_here"]))
    assert "lora.target_modules ['nothing_here'] match nothing in this model (ignored)" in est.notes


def test_optimizer_note_is_shown(tiny):
    est = estimate(tiny(training__optim="lomo"))
    assert "optim lomo: LOMO applies updates during backward; no optimizer state" in est.notes
    assert comp(est, "optimizer state") == 0


def test_adafactor_state_by_hand(tiny):
    # one row and one column vector per matrix, fp32: q, k, v, o 4 x 128, gate and up 2 x 320, down 320,
    # embedding and head 2 x 1064; the 192 norm weights keep a full fp32 value each
    est = estimate(tiny(training__optim="adafactor"))
    assert comp(est, "optimizer state") == (4 * 128 + 3 * 320 + 2 * 1064) * 4 + 192 * 4
    assert detail(est, "optimizer state") == "adafactor: factored second moment (rows + columns per matrix)"
    lora = estimate(tiny(training__optim="adafactor", **LORA))
    assert comp(lora, "optimizer state") == ((8 + 64) + (64 + 8)) * 4  # lora_A 8 x 64, lora_B 64 x 8
    tied = estimate(tiny(arch={"tie_word_embeddings": True}, training__optim="adafactor"))
    assert comp(tied, "optimizer state") == (4 * 128 + 3 * 320 + 1064) * 4 + 192 * 4


def test_unknown_optimizer_is_sized_as_torch_adamw():
    assert optimizers.spec("no-such-optim") == optimizers.spec("adamw_torch")
    assert optimizers.spec("no-such-optim").states == 2 and optimizers.spec("no-such-optim").step_temp == 1
    assert optimizers.is_32bit_state("adamw_torch") and optimizers.is_32bit_state("paged_adamw_32bit")
    assert not optimizers.is_32bit_state("adamw_bnb_8bit") and not optimizers.is_32bit_state("sgd")
    assert not optimizers.is_32bit_state("adamw_torch_4bit")
    assert optimizers.is_32bit_state("lion_32bit")


# ---- precision ----------------------------------------------------------------------------------------
def _p(**sections):
    arch = from_config_json({**TINY}, "t")
    return _precision(arch, settings(Config(model={"name_or_path": "x", **sections.pop("model", {})}, **sections)))


def test_precision_of_each_setup():
    assert _p(model={"dtype": "bfloat16"}, training={"bf16": True}) == _p(model={"dtype": "auto"}, training={"bf16": True})
    p = _p(model={"dtype": "float32"}, training={"bf16": False}, launch={"mixed_precision": "no"})
    assert (p.weight, p.act, p.residual, p.mixed, p.kbit, p.block_out, p.attn) == (4, 4, 4, "no", "", 4, 4)
    p = _p(model={"dtype": "float32"}, training={"fp16": True})
    assert (p.weight, p.act, p.residual, p.mixed) == (4, 2, 4, "fp16")
    # QLoRA without autocast: the compute dtype comes out of the matmuls, fp32 from the block linears
    p = _p(model={"dtype": "bfloat16"}, training={"bf16": False}, launch={"mixed_precision": "no"},
           quantization={"load_in_4bit": True, "bnb_4bit_compute_dtype": "float16"}, lora={"enabled": True})
    assert (p.weight, p.act, p.residual, p.kbit, p.block_out, p.attn) == (2, 2, 4, "4bit", 4, 4)
    p = _p(model={"dtype": "bfloat16"}, training={"bf16": False}, launch={"mixed_precision": "no"},
           quantization={"load_in_4bit": True, "bnb_4bit_compute_dtype": "float32"}, lora={"enabled": True})
    assert p.act == 4
    p = _p(model={"dtype": "float32"}, training={"bf16": False}, launch={"mixed_precision": "no"},
           quantization={"load_in_8bit": True}, lora={"enabled": True})
    assert (p.weight, p.act, p.kbit, p.residual) == (4, 2, "8bit", 4)  # int8 matmuls return fp16
    assert mixed_precision(settings(Config(training={"bf16": True}))) == "bf16"
    assert mixed_precision(settings(Config(training={"bf16": False}, launch={"mixed_precision": "fp16"}))) == "fp16"


def test_qlora_without_autocast_keeps_attention_in_fp32(tiny):
    # without autocast q/k/v come out of the 4-bit linears in fp32, and the attention kernel keeps them so
    base = dict(training__bf16=False, launch__mixed_precision="no", quantization__load_in_4bit=True,
                quantization__bnb_4bit_compute_dtype="bfloat16", **LORA)
    est = estimate(tiny(**base))
    assert est.phases["forward"] > 0
    p = _p(model={"dtype": "bfloat16"}, training={"bf16": False}, launch={"mixed_precision": "no"},
           quantization={"load_in_4bit": True, "bnb_4bit_compute_dtype": "bfloat16"}, lora={"enabled": True})
    assert p.attn == 4 and p.act == 2


# ---- attention and the mask ---------------------------------------------------------------------------
def test_attention_mask_rules():
    def s(impl, batch, padding="longest"):
        return settings(Config(model={"attn_implementation": impl}, training={"per_device_train_batch_size": batch},
                               data={"padding": padding}))

    assert builds_attention_mask(s("eager", 1)) is True
    assert builds_attention_mask(s("flash_attention_2", 8, "max_length")) is False
    assert builds_attention_mask(s("sdpa", 1)) is False
    assert builds_attention_mask(s("sdpa", 2)) is True
    assert builds_attention_mask(s("sdpa", 1, "max_length")) is True


def test_eager_attention_keeps_seq_by_seq_scores(tiny):
    sdpa = estimate(tiny(data__padding="max_length"))
    eager = estimate(tiny(model__attn_implementation="eager", data__padding="max_length"))
    flash = estimate(tiny(model__attn_implementation="flash_attention_2", data__padding="max_length"))
    # batch 1, padded to max_length, 4 heads, 100 x 100:
    #   eager: fp32 probabilities + their bf16 cast per score, and a bf16 additive mask 100 x 100
    #   sdpa:  the boolean mask made additive in bf16, last dimension padded to 112, kept per layer
    scores = 4 * 100 * 100
    assert comp(eager, "activations") - comp(flash, "activations") == scores * (4 + 2) + 100 * 100 * 2
    assert comp(sdpa, "activations") - comp(flash, "activations") == 100 * 112 * 2
    assert detail(eager, "activations") == "1 blocks x 0.00 GiB; eager attention's seq x seq scores 0.00 GiB per block"
    assert detail(sdpa, "activations") == "1 blocks x 0.00 GiB; SDPA's additive mask 0.00 GiB per block"
    assert detail(flash, "activations") == "1 blocks x 0.00 GiB"
    dropped = estimate(tiny(model__attn_implementation="eager", model__attention_dropout=0.1))
    assert comp(dropped, "activations") - comp(flash, "activations") == scores * (4 + 2 + 1) + 100 * 100 * 2
    # no dropout below 1.0 is free: even 0.5 keeps the mask
    half = estimate(tiny(model__attn_implementation="eager", model__attention_dropout=0.5))
    assert comp(half, "activations") == comp(dropped, "activations")


def test_fp32_eager_attention_keeps_one_copy_of_the_probabilities(tiny):
    fp32 = dict(model__dtype="float32", training__bf16=False, launch__mixed_precision="no")
    eager = estimate(tiny(model__attn_implementation="eager", **fp32))
    flash = estimate(tiny(model__attn_implementation="flash_attention_2", **fp32))
    assert comp(eager, "activations") - comp(flash, "activations") == 4 * 100 * 100 * 4 + 100 * 100 * 4
    dropped = estimate(tiny(model__attn_implementation="eager", model__attention_dropout=0.1, **fp32))
    assert comp(dropped, "activations") - comp(flash, "activations") == 4 * 100 * 100 * (4 + 1 + 4) + 100 * 100 * 4


def test_sdpa_with_a_batch_builds_a_boolean_mask_and_expands_kv(tiny):
    gqa = {"num_key_value_heads": 2}
    sdpa = estimate(tiny(arch=gqa, training__per_device_train_batch_size=2))
    flash = estimate(tiny(arch=gqa, model__attn_implementation="flash_attention_2",
                          training__per_device_train_batch_size=2))
    # 2 rows: the boolean mask 2 x 100 x 100 x 1 B, its additive bf16 copy 2 x 100 x 112 x 2 B, and k and v
    # expanded from 2 to 4 heads of 16 for 200 tokens: 2 x (64 - 32) x 2 B per token
    assert comp(sdpa, "activations") - comp(flash, "activations") == (2 * 100 * 100 + 2 * 100 * 112 * 2
                                                                       + 200 * 2 * 32 * 2)


def test_activations_grow_with_batch_and_sequence(tiny):
    flash = dict(model__attn_implementation="flash_attention_2")
    one = comp(estimate(tiny(**flash)), "activations")
    assert comp(estimate(tiny(training__per_device_train_batch_size=3, **flash)), "activations") == 3 * one
    assert comp(estimate(tiny(data__max_seq_length=300, **flash)), "activations") == 3 * one
    assert comp(estimate(tiny(**flash)), "logits & loss") * 2 == comp(
        estimate(tiny(data__max_seq_length=200, **flash)), "logits & loss")


def test_residual_dropout_masks_only_where_the_model_has_them(tiny):
    llama = comp(estimate(tiny(model__hidden_dropout=0.1)), "activations")
    assert llama == comp(estimate(tiny()), "activations")
    phi = {"model_type": "phi3"}
    phi3 = comp(estimate(tiny(arch=phi, model__hidden_dropout=0.1)), "activations")
    assert phi3 - comp(estimate(tiny(arch=phi)), "activations") == SEQ * 2 * 64  # after attention and after the MLP


def test_gemma2_blocks_keep_four_norms(tiny):
    gemma = {"model_type": "gemma2", "final_logit_softcapping": None, "tie_word_embeddings": False}
    flash = dict(model__attn_implementation="flash_attention_2")
    g = comp(estimate(tiny(arch=gemma, **flash)), "activations")
    lm = comp(estimate(tiny(**flash)), "activations")
    assert g - lm == SEQ * 2 * (4 * 64 + 2 * 64)  # two more norms, each: fp32 input + bf16 output


def test_gemma2_soft_cap_keeps_the_capped_logits(tiny):
    capped = estimate(tiny(arch={"model_type": "gemma2", "tie_word_embeddings": False}))
    plain = estimate(tiny(arch={"model_type": "gemma2", "final_logit_softcapping": None, "tie_word_embeddings": False}))
    assert capped.architecture.final_logit_softcapping == 30.0
    assert comp(capped, "logits & loss") - comp(plain, "logits & loss") == SEQ * 1000 * 2  # tanh output, bf16
    assert capped.phases["backward"] - plain.phases["backward"] == pytest.approx(SEQ * 1000 * 2 * 1.06, abs=2)


def test_fp32_lora_caches_copies_of_frozen_weights_and_head(tiny):
    # an fp32 checkpoint under bf16 autocast: each frozen block linear is cast at its matmul (2 B per weight,
    # kept for backward) and so is the head (1000 x 64 x 2 B, kept until the head's backward)
    fp32 = estimate(tiny(model__dtype="float32", **LORA))
    assert fp32.phase == "backward"
    assert detail(fp32, "logits & loss") == "1 x 100 x 1,000 vocab + 16-bit copy of the fp32 head (0.00 GiB)"
    assert comp(fp32, "logits & loss") == LOGITS_BWD + 1000 * 64 * 2
    assert comp(fp32, "frozen weights") == PARAMS * 4
    no_cast = estimate(tiny(model__dtype="float32", training__bf16=False, launch__mixed_precision="no", **LORA))
    assert "16-bit copy" not in detail(no_cast, "logits & loss")
    assert comp(no_cast, "logits & loss") == SEQ * 1000 * 12  # fp32 logits: no upcast copy, no head copy


# ---- checkpointing, notes, data lengths, JSON -----------------------------------------------------------
def test_checkpointing_detail_and_kept_inputs(tiny):
    est = estimate(tiny(training__gradient_checkpointing=True, model__attn_implementation="flash_attention_2"))
    assert detail(est, "activations").startswith("checkpointed: 1 block inputs + 1 recomputed block (")


def test_longest_row_sizes_the_activations(tiny):
    flash = dict(model__attn_implementation="flash_attention_2")
    full = estimate(tiny(**flash))
    short = estimate(tiny(**flash), data_lengths={"max": 50})
    assert short.seq_tokens == 50 and short.seq_source == "longest row in the data"
    assert comp(short, "activations") * 2 == comp(full, "activations")
    assert any("longest row (50 tokens" in n and "instead of max_seq_length (100)" in n for n in short.notes)
    assert not any("padded to max_seq_length" in n for n in short.notes)
    assert full.seq_tokens == 100 and full.seq_source == "max_seq_length"
    # not shorter, packed or padded to max_length: max_seq_length stays
    assert estimate(tiny(**flash), data_lengths={"max": 100}).seq_source == "max_seq_length"
    assert estimate(tiny(**flash), data_lengths={"max": 0}).seq_source == "max_seq_length"
    assert estimate(tiny(data__packing=True, **flash), data_lengths={"max": 50}).seq_tokens == 100
    assert estimate(tiny(data__padding="max_length", **flash), data_lengths={"max": 50}).seq_tokens == 100


def test_padding_note_only_for_dynamic_padding(tiny):
    note = "activations assume every batch is padded to max_seq_length (the worst case)"
    assert note in estimate(tiny()).notes
    assert note not in estimate(tiny(data__packing=True)).notes
    assert note not in estimate(tiny(data__padding="max_length")).notes


def test_estimate_to_dict_and_verdict(tiny):
    est = estimate(tiny(), budget_bytes=2 * 1024**3)
    d = est.to_dict()
    assert d["peak_bytes"] == est.peak_bytes and d["phase"] == "backward" and d["phases"] == est.phases
    assert d["components"][0] == {"name": "CUDA context", "bytes": CUDA_CONTEXT,
                                  "detail": "driver context and kernels", "evictable": False}
    assert (d["params_total"], d["params_trainable"]) == (PARAMS, PARAMS)
    assert d["arch_source"].startswith("config.json in ") and d["budget_bytes"] == 2 * 1024**3
    assert d["verdict"] == "fits" == est.verdict and d["notes"] == est.notes
    assert d["suggestions"] == [vars(s) for s in est.suggestions]
    assert estimate(tiny()).verdict is None
    assert verdict(90, 100) == "fits" and verdict(91, 100) == "tight" and verdict(100, 100) == "tight"
    assert verdict(101, 100) == "does not fit"


# ---- each family's block, by hand (batch 1, 100 tokens, bf16 autocast) ----------------------------------
EDGES = SEQ * 64 * (2 + 4 + 2)  # embedding output, final norm's fp32 input and its bf16 output


def test_gpt2_block_by_hand(tiny):
    # per token: 2 LayerNorms, input + output, 2 x (128 + 128)                         = 512
    #   c_attn input 128, fused q/k/v 384, attention output 128 + log-sum-exp 16        = 656
    #   c_fc input 128, gelu_new's four 256-wide tensors 4 x 512, c_proj input 512      = 2688
    gpt2 = {"model_type": "gpt2", "n_embd": 64, "n_layer": 1, "n_head": 4, "n_inner": 256, "vocab_size": 1000,
            "n_positions": 128, "tie_word_embeddings": False}
    assert comp(estimate(tiny(arch=gpt2)), "activations") == SEQ * (512 + 656 + 2688) + EDGES
    # residual dropout keeps two one-byte masks per token
    assert comp(estimate(tiny(arch=gpt2, model__hidden_dropout=0.1)), "activations") == (
        SEQ * (512 + 656 + 2688 + 2 * 64) + EDGES)
    # LoRA on c_attn with dropout (r 8): norms keep only their inputs (2 x 128); the adapter keeps its bf16
    # copy of the input and a mask (64 x 3) + its rank-8 output (16); no trained linear keeps anything
    lora = estimate(tiny(arch=gpt2, lora__enabled=True, lora__r=8, lora__target_modules=["c_attn"]))
    assert comp(lora, "activations") == SEQ * (256 + (192 + 16 + 384 + 144) + 2048) + EDGES


def test_phi3_block_by_hand(tiny):
    # per token: 2 norms 2 x 384; qkv_proj input 128, fused output 384, rotated q and k 256,
    # attention output + log-sum-exp 144; gate_up input 128, its output 1024, the product 512, down input 512
    phi = {"model_type": "phi3"}
    assert comp(estimate(tiny(arch=phi)), "activations") == SEQ * (768 + 912 + 2176) + EDGES
    # grouped-query (2 kv heads of 16) with a batch of 2: k and v expanded to 4 heads, 2 x 32 x 2 bytes more
    # per token than flash attention, which reads them unexpanded
    gqa = {"model_type": "phi3", "num_key_value_heads": 2}
    sdpa = comp(estimate(tiny(arch=gqa, training__per_device_train_batch_size=2)), "activations")
    flash = comp(estimate(tiny(arch=gqa, training__per_device_train_batch_size=2,
                               model__attn_implementation="flash_attention_2")), "activations")
    assert sdpa - flash == 200 * 2 * 32 * 2 + 2 * 100 * 112 * 2 + 2 * 100 * 100


def test_fp32_full_fine_tune_casts_each_linears_input(tiny):
    # fp32 weights under bf16 autocast: every trained linear keeps its own 16-bit copy of its fp32 input.
    #   2 norms: fp32 input + fp32 output, 2 x 512                                = 1024
    #   q, k, v: 3 copies 3 x 128; rotated q, k and v 384; attention output 144   = 912
    #   gate, up: 2 x 128; 3 x 512 intermediates; down_proj's bf16 input 512      = 2304
    est = estimate(tiny(model__dtype="float32"))
    assert comp(est, "activations") == SEQ * (1024 + 912 + 2304) + SEQ * 64 * (4 + 4 + 4)


def test_fp32_lora_keeps_cast_copies_of_the_frozen_block_weights(tiny):
    # LoRA (q_proj, r 8, no dropout) on fp32 weights under bf16 autocast, per token:
    #   2 norms' fp32 inputs 512; q_proj's adapter: bf16 input 128 + rank output 16; q/k/v 384 + 144;
    #   MLP intermediates 1536                                                      = 2720
    # and, once per block, the 16-bit copies of its 65,536 frozen linear weights kept for backward
    est = estimate(tiny(model__dtype="float32", **LORA))
    assert comp(est, "activations") == SEQ * 2720 + BLOCK_LINEAR * 2 + SEQ * 64 * (4 + 4 + 4)
    # a bf16 checkpoint needs no cast: its weights are used as they are
    bf16 = estimate(tiny(**LORA))
    assert comp(bf16, "activations") == SEQ * (2 * 256 + 144 + 384 + 144 + 1536) + EDGES


def test_llama_eager_expands_kv_even_for_one_row(tiny):
    gqa = {"num_key_value_heads": 2}
    flash = comp(estimate(tiny(arch=gqa, model__attn_implementation="flash_attention_2")), "activations")
    sdpa = comp(estimate(tiny(arch=gqa)), "activations")
    eager = comp(estimate(tiny(arch=gqa, model__attn_implementation="eager")), "activations")
    assert sdpa == flash  # one unpadded row: the causal kernel reads k and v unexpanded
    assert eager - flash == SEQ * 2 * 32 * 2 + 4 * 100 * 100 * 6 + 100 * 100 * 2
    padded = comp(estimate(tiny(arch=gqa, data__padding="max_length")), "activations")
    assert padded - flash == SEQ * 2 * 32 * 2 + 100 * 112 * 2


def test_each_adapted_linear_adds_its_own_input(tiny):
    # no dropout, r 8, autocast: an adapter keeps its bf16 copy of the 64-wide input and its rank output,
    # 64 x 2 + 8 x 2 = 144 bytes per token, wherever it sits (o_proj reads the attention output, up_proj the
    # norm output it shares with gate_proj)
    lora = dict(lora__enabled=True, lora__r=8, lora__lora_dropout=0.0)
    q = comp(estimate(tiny(lora__target_modules=["q_proj"], **lora)), "activations")
    assert comp(estimate(tiny(lora__target_modules=["q_proj", "o_proj"], **lora)), "activations") - q == SEQ * 144
    gate = comp(estimate(tiny(lora__target_modules=["gate_proj"], **lora)), "activations")
    assert comp(estimate(tiny(lora__target_modules=["gate_proj", "up_proj"], **lora)), "activations") - gate == SEQ * 144
    down = comp(estimate(tiny(lora__target_modules=["down_proj"], **lora)), "activations")
    assert down - gate == SEQ * (256 - 64) * 2  # down_proj's input is 256 wide


def test_adafactor_state_of_several_adapters(tiny):
    est = estimate(tiny(training__optim="adafactor", lora__enabled=True, lora__r=8,
                        lora__target_modules=["q_proj", "down_proj"]))
    # q_proj: lora_A 8 x 64 and lora_B 64 x 8; down_proj: lora_A 8 x 256 and lora_B 64 x 8
    assert comp(est, "optimizer state") == ((8 + 64) + (64 + 8) + (8 + 256) + (64 + 8)) * 4


def test_a_cpu_target_gets_no_cuda_only_suggestion(tiny):
    from runner.estimate.suggest import needs_cuda

    cpu = estimate(tiny(launch__device="cpu", training__bf16=False, launch__mixed_precision="no"),
                   budget_bytes=CUDA_CONTEXT)  # nothing fits: every remedy is listed
    assert cpu.suggestions and not any(needs_cuda(sug.changes) for sug in cpu.suggestions)
    gpu = estimate(tiny(launch__device="cuda", training__bf16=False, launch__mixed_precision="no"),
                   budget_bytes=CUDA_CONTEXT)
    assert any(needs_cuda(sug.changes) for sug in gpu.suggestions)


def test_remedies_after_running_out_of_memory(tiny):
    from runner.estimate import estimate_for, remedies

    config = tiny()
    peak = estimate(config).peak_bytes
    assert estimate_for(config).phases == estimate(config).phases  # no data lengths recorded here
    assert remedies(config) == []  # no budget, no failure: nothing to remedy
    assert remedies(config, 100 * peak) == estimate(config, 100 * peak).suggestions
    # the run died: memory must fall even though the estimate fit, so the budget is the estimated peak
    assert remedies(config, 100 * peak, out_of_memory=True) == estimate(config, peak).suggestions
    assert remedies(config, out_of_memory=True) == estimate(config, peak).suggestions
    assert remedies(config, peak // 2, out_of_memory=True) == estimate(config, peak // 2).suggestions
    assert all(sug.kind == "memory" for sug in remedies(config, out_of_memory=True))


def test_spare_gpus_are_offered_for_sharding():
    # a full fine-tune of an 8B model on one 24 GiB GPU of eight: sharding over all eight helps
    config = Config(model={"name_or_path": "meta-llama/Llama-3.1-8B", "dtype": "bfloat16"},
                    training={"bf16": True, "optim": "adamw_torch"}, launch={"device": "cuda"})
    est = estimate(config, budget_bytes=24 * 1024**3, gpu_count=8)
    assert any(sug.changes == {"launch.num_processes": 8, "launch.strategy": "fsdp"} for sug in est.suggestions)
    alone = estimate(config, budget_bytes=24 * 1024**3)
    assert not any("launch.num_processes" in sug.changes for sug in alone.suggestions)


def test_embedding_and_head_adapters(tiny):
    gpt2 = {"model_type": "gpt2", "n_embd": 64, "n_layer": 1, "n_head": 4, "n_inner": 256, "vocab_size": 1000,
            "n_positions": 128, "tie_word_embeddings": False}
    est = estimate(tiny(arch=gpt2, lora__enabled=True, lora__r=8, lora__target_modules=["wte"]))
    assert est.params_trainable == 8 * (1000 + 64)  # lora_embedding_A 8 x vocab, lora_embedding_B 64 x 8
    llama = estimate(tiny(lora__enabled=True, lora__r=8, lora__target_modules=["q_proj", "lm_head", "embed_tokens"]))
    assert llama.params_trainable == 8 * (64 + 64) + 8 * (64 + 1000) + 8 * (1000 + 64)
    assert not any("match nothing" in n for n in llama.notes)  # both named modules exist
