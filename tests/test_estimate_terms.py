"""The estimator's terms that issue #14 corrected, each against bytes worked out by hand, and the
distributed components (DDP buckets, FSDP, DeepSpeed ZeRO) per world size, multi-node included."""

from __future__ import annotations

import pytest

from fixtures.estimates import SEQ, TINY, comp, empty_hub_cache, tiny_configs  # noqa: F401 (an autouse fixture)
from runner.estimate import estimate
from runner.estimate.architecture import from_config_json
from runner.estimate.memory import (NCCL_BUFFERS, CUDA_CONTEXT, adapter_input_bytes, checkpointed_backward,
                                    frozen_head_copy, kbit_linear_out, tied_gradient_sum, _precision, settings)
from runner.schema import Config

LLAMA_8B_PARAMS = 8_030_261_248


@pytest.fixture
def tiny(tmp_path):
    """A config on the TINY model (a local config.json), with "section.key" changes."""
    return tiny_configs(tmp_path)


def activations(config) -> int:
    """Activations of a step without checkpointing (the forward keeps every block's)."""
    est = estimate(config)
    return next(c.bytes for c in est.components if c.name == "activations")


# ---- term 1: peft casts each adapter's input separately ------------------------------------------------
def test_sibling_adapters_each_keep_their_own_input():
    # q, k, v adapters on a 4096-wide input, r 16, autocast on: each keeps its 16-bit copy and a 1-byte mask
    assert adapter_input_bytes(4096, 3, True, 2, True, 16) == 3 * 4096 * (2 + 1) + 3 * 16 * 2
    # without autocast lora_A computes in fp32: 4 bytes per input value, rank-wide output in fp32 too
    assert adapter_input_bytes(4096, 3, True, 2, False, 16) == 3 * 4096 * (4 + 1) + 3 * 16 * 4
    # no dropout, autocast: still one cast each (peft's fp32 cast, then autocast's 16-bit one)
    assert adapter_input_bytes(4096, 3, False, 2, True, 16) == 3 * 4096 * 2 + 3 * 16 * 2
    # an fp32 input, no autocast, no dropout: nothing is cast, all three save the same storage
    assert adapter_input_bytes(4096, 3, False, 4, False, 16) == 4096 * 4 + 3 * 16 * 4


def test_one_more_sibling_adapter_adds_its_own_input(tiny):
    # adapting k_proj beside q_proj on the tiny model adds, per token: the 64-wide input at 2 bytes (its
    # autocast copy) + a 1-byte dropout mask + the r=8 output at 2 bytes
    q = tiny(lora__enabled=True, lora__r=8, lora__target_modules=["q_proj"])
    qk = tiny(lora__enabled=True, lora__r=8, lora__target_modules=["q_proj", "k_proj"])
    assert activations(qk) - activations(q) == SEQ * (64 * (2 + 1) + 8 * 2)


# ---- term 2: 4-bit linears return fp32 after prepare_model_for_kbit_training ----------------------------
def test_kbit_linear_outputs_are_in_the_input_dtype():
    assert kbit_linear_out(act=2, residual=4, kbit="4bit") == 4  # fp32 norms in, fp32 out, even under autocast
    assert kbit_linear_out(act=2, residual=2, kbit="") == 2  # plain linears return the autocast dtype
    p = _precision(from_config_json(TINY, "t"), settings(Config(
        model={"name_or_path": "x", "dtype": "bfloat16"}, training={"bf16": True},
        quantization={"load_in_4bit": True, "bnb_4bit_compute_dtype": "bfloat16"}, lora={"enabled": True})))
    assert (p.residual, p.block_out, p.attn) == (4, 4, 2)  # attention still runs in bf16 under autocast


def test_qlora_mlp_intermediates_are_fp32(tiny):
    # Same adapters (q_proj only, no dropout). Per token of the one block, 4-bit loading changes:
    #   gate output, SiLU output and up output: 3 x 256 x (4 - 2) bytes          = 1536
    #   the final norm's input and output and the embedding output now fp32:
    #   2 x 64 x (4 - 2) (the other, fp32 copy is there anyway)                  = 256
    # The block norms keep fp32 inputs either way; q_proj's adapter keeps its bf16 autocast copy either way.
    lora = dict(lora__enabled=True, lora__r=8, lora__target_modules=["q_proj"], lora__lora_dropout=0.0)
    plain = activations(tiny(**lora))
    nf4 = activations(tiny(quantization__load_in_4bit=True, quantization__bnb_4bit_compute_dtype="bfloat16", **lora))
    assert nf4 - plain == SEQ * (3 * 256 * 2 + 2 * 64 * 2)


# ---- term 3: checkpointed backward peaks at the larger moment, not their sum -----------------------------
def test_checkpointed_backward_takes_the_larger_moment():
    loss = {"weights": 10.0, "grads": 0.0, "optim": 5.0, "act": 100.0, "logits": 50.0, "temp": 0.0}
    # recomputing one block (30) with its gradient temporaries (10) after the loss's 50 are freed: 155 < 165
    assert checkpointed_backward(loss, 30.0, 10.0) == loss
    bigger = checkpointed_backward(loss, 60.0, 10.0)  # 10 + 5 + 160 + 10 = 185 > 165
    assert bigger == {"weights": 10.0, "grads": 0.0, "optim": 5.0, "act": 160.0, "logits": 0.0, "temp": 10.0}
    assert sum(bigger.values()) == 185.0


@pytest.mark.parametrize("vocab,phase_holds", [(1000, "loss"), (10, "recompute")])
def test_checkpointed_backward_by_hand(tiny, vocab, phase_holds):
    # LoRA r 8 on q_proj only, no dropout, checkpointing, batch 1 x 100 tokens. Per token:
    #   kept: the block's input (64 x 2) + embedding output, final norm input and output (64 x 8) = 640
    #   one recomputed block: norms 2 x 256, q_proj's adapter 64 x 2 + 8 x 2, q/k/v 384,
    #   attention output + log-sum-exp 144, gate/SiLU/up 3 x 256 x 2                    = 2720
    #   its gradient temporaries: 3 x 256 x 2                                               = 1536
    #   the loss's backward buffers: vocab x 12 (fp32 log-softmax output, its and the input's gradients)
    config = tiny(arch={"vocab_size": vocab}, lora__enabled=True, lora__r=8, lora__target_modules=["q_proj"],
                  lora__lora_dropout=0.0, training__gradient_checkpointing=True)
    est = estimate(config)
    assert est.phase == "backward"
    if phase_holds == "loss":  # 100 x (640 + 12,000) beats 100 x (640 + 2720 + 1536)
        assert (comp(est, "activations"), comp(est, "logits & loss")) == (SEQ * 640, SEQ * vocab * 12)
    else:  # the loss's 100 x 120 bytes are gone when the block is recomputed
        assert (comp(est, "activations"), comp(est, "logits & loss")) == (SEQ * (640 + 2720), 0)


# ---- term 4: full fine-tuning keeps the attention output once ------------------------------------------
def test_full_fine_tune_block_by_hand(tiny):
    # bf16 weights, bf16 autocast, one block, per token (h 64, i 256, 4 heads of 16):
    #   2 norms: fp32 input (4 x 64) + bf16 output for the weight's gradient (2 x 64)   = 768
    #   q/k/v input, shared (no cast needed)                                           = 128
    #   rotated q, rotated k, v (3 x 64 x 2)                                            = 384
    #   attention output (64 x 2) + log-sum-exp (4 heads x 4); o_proj reads that output = 144
    #   gate/up input 128, gate + SiLU + up outputs 3 x 256 x 2, down_proj input 512    = 2176
    per_block = 768 + 128 + 384 + 144 + 2176
    edges = 64 * (2 + 4 + 2)  # embedding output, final norm's fp32 input and its output
    assert activations(tiny()) == SEQ * (per_block + edges)


# ---- term 5: tied embeddings in full fine-tuning ----------------------------------------------------------
def test_tied_embedding_gradients_exist_three_times():
    llama_1b = from_config_json(dict(model_type="llama", vocab_size=128256, hidden_size=2048, intermediate_size=8192,
                                     num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                                     tie_word_embeddings=True), "t")
    assert tied_gradient_sum(llama_1b, lora=False, train_bytes=2) == 2 * 128256 * 2048 * 2  # 1,050,673,152
    assert tied_gradient_sum(llama_1b, lora=True, train_bytes=2) == 0  # the embedding does not train
    untied = from_config_json({**TINY}, "t")
    assert tied_gradient_sum(untied, lora=False, train_bytes=2) == 0


def test_tied_sum_sets_the_end_of_backward(tiny):
    # Full fine-tune (SGD, no optimizer state) of the tiny model with a tied 200,000-token vocabulary and
    # 8 tokens: the peak is the end of backward, where every gradient exists plus two vocab x hidden copies.
    config = tiny(arch={"tie_word_embeddings": True, "vocab_size": 200_000}, data__max_seq_length=8,
                  training__optim="sgd")
    est = estimate(config)
    params = 200_000 * 64 + (64 * 64 * 4 + 3 * 64 * 256 + 2 * 64) + 64  # embedding, block, final norm
    assert est.params_total == params
    assert est.phase == "backward"
    assert comp(est, "gradients") == params * 2 + 2 * 200_000 * 64 * 2


def test_frozen_fp32_head_is_copied_under_autocast():
    arch = from_config_json({**TINY}, "t")
    s = settings(Config(model={"name_or_path": "x", "dtype": "bfloat16"}, training={"bf16": True},
                        quantization={"load_in_4bit": True}, lora={"enabled": True}))
    assert frozen_head_copy(arch, _precision(arch, s), lora=True) == 1000 * 64 * 2
    s16 = settings(Config(model={"name_or_path": "x", "dtype": "bfloat16"}, training={"bf16": True},
                          lora={"enabled": True}))
    assert frozen_head_copy(arch, _precision(arch, s16), lora=True) == 0  # a bf16 head needs no cast


# ---- distributed components per world size (issue #20) ----------------------------------------------------
def cfg8b(**launch) -> Config:
    return Config(model={"name_or_path": "meta-llama/Llama-3.1-8B", "dtype": "bfloat16"},
                  training={"bf16": True, "per_device_train_batch_size": 1, "gradient_checkpointing": True,
                            "optim": "adamw_torch"},
                  data={"max_seq_length": 1024}, launch=launch)


GRADS = LLAMA_8B_PARAMS * 2  # bf16 gradients of every parameter
ADAM = LLAMA_8B_PARAMS * 4  # two bf16 moments


@pytest.mark.parametrize("procs,machines", [(1, 1), (2, 1), (8, 1), (1, 2), (4, 2), (8, 4)])
def test_ddp_gradient_buckets_per_world_size(procs, machines):
    est = estimate(cfg8b(num_processes=procs, num_machines=machines, strategy="ddp"))
    world = procs * machines
    # DDP keeps a bucket copy of every gradient once there is anyone to all-reduce with; nothing is sharded
    assert est.phase == "optimizer step"
    assert comp(est, "gradients") == GRADS * (2 if world > 1 else 1)
    assert comp(est, "optimizer state") == ADAM
    assert comp(est, "trainable weights") == LLAMA_8B_PARAMS * 2
    assert comp(est, "CUDA context") == CUDA_CONTEXT + (NCCL_BUFFERS if world > 1 else 0)


@pytest.mark.parametrize("procs,machines", [(1, 1), (2, 1), (8, 1), (1, 2), (4, 2)])
def test_fsdp_shards_over_every_process_of_every_machine(procs, machines):
    world = procs * machines
    est = estimate(cfg8b(num_processes=procs, num_machines=machines, strategy="fsdp"))
    assert est.phase == "optimizer step"
    assert comp(est, "optimizer state") == pytest.approx(ADAM / world, abs=1)
    assert comp(est, "gradients") == pytest.approx(GRADS / world, abs=1)
    # the bf16 weights are sharded too, plus two whole blocks gathered at a time (218,112,000 params each)
    block = 218_112_000 * 2
    assert comp(est, "trainable weights") == pytest.approx(LLAMA_8B_PARAMS * 2 / world + 2 * block, abs=2)


@pytest.mark.parametrize("procs,machines", [(1, 1), (2, 1), (8, 1), (4, 2)])
@pytest.mark.parametrize("zero", [1, 2, 3])
def test_deepspeed_zero_stages_per_world_size(procs, machines, zero):
    world = procs * machines
    est = estimate(cfg8b(num_processes=procs, num_machines=machines, strategy="deepspeed", zero_stage=zero))
    assert est.phase == "optimizer step"
    # every stage shards the optimizer state and the fp32 master copy of the bf16 weights
    assert comp(est, "optimizer state") == pytest.approx(ADAM / world, abs=1)
    master = LLAMA_8B_PARAMS * 4 / world
    weights = LLAMA_8B_PARAMS * 2 / (world if zero == 3 else 1) + (2 * 218_112_000 * 2 if zero == 3 else 0)
    assert comp(est, "trainable weights") == pytest.approx(weights + master, abs=2)
    # stage 2 and 3 shard the gradients as well
    assert comp(est, "gradients") == pytest.approx(GRADS / (world if zero >= 2 else 1), abs=1)
    assert comp(est, "CUDA context") == CUDA_CONTEXT + (NCCL_BUFFERS if world > 1 else 0)


def test_multi_node_totals_are_processes_times_machines():
    # 4 processes on each of 2 machines shard like 8 on one, not like 4
    two_nodes = estimate(cfg8b(num_processes=4, num_machines=2, strategy="fsdp"))
    one_node = estimate(cfg8b(num_processes=8, num_machines=1, strategy="fsdp"))
    per_node = estimate(cfg8b(num_processes=4, num_machines=1, strategy="fsdp"))
    assert comp(two_nodes, "optimizer state") == comp(one_node, "optimizer state") < comp(per_node, "optimizer state")
    assert two_nodes.peak_bytes == one_node.peak_bytes
    assert any("8 processes" in n for n in two_nodes.notes)
    # 8 processes on each of 4 machines: 32 shards
    big = estimate(cfg8b(num_processes=8, num_machines=4, strategy="fsdp"))
    assert comp(big, "optimizer state") == pytest.approx(ADAM / 32, abs=1)
    assert comp(big, "CUDA context") == CUDA_CONTEXT + NCCL_BUFFERS


# ---- shipped presets fit the GPU their description names ---------------------------------------------------
def test_every_shipped_preset_fits_the_gpu_its_description_names():
    import re

    from runner.estimate import verdict
    from runner.paths import shipped_presets_dir
    from runner.presets import require_config

    GiB = 1024**3
    checked = []
    for name in sorted(p.stem for p in shipped_presets_dir().glob("*.toml")):
        config = require_config(name)
        sizes = [int(n) for n in re.findall(r"(\d+)(?:-\d+)? GB", config.description)]
        if not sizes:
            assert "CPU" in config.description, f"{name}: the description names no GPU size: {config.description!r}"
            continue
        # a range ("one 16-24 GB GPU") promises the smaller card; the worst case (rows padded to max length)
        est = estimate(config)
        assert verdict(est.peak_bytes, min(sizes) * GiB) == "fits", (
            f"{name}: {est.peak_bytes / GiB:.1f} GiB per GPU does not fit the {min(sizes)} GB its description names")
        checked.append(name)
    assert {"lora-1b", "qlora-8b", "full-small", "qlora-70b", "pretrain-gpt"} <= set(checked)
