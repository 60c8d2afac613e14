"""Peak GPU memory of one training process, as separately reported components.

Memory is modelled at three moments of a step: the end of the forward pass (all activations and
the loss alive), the backward pass (activations still alive, gradients arriving, the loss gradient
over the whole vocabulary), and the optimizer step (every gradient, the state being updated). The
peak is the largest of the three, and its components are what the caller shows.

Inputs are a flat dict of config values keyed "section.name" (see `settings`), so suggestions can
try changes without rebuilding a Config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runner.schema import Config
from runner.schema.launch import resolve_mixed_precision

from . import optimizers
from .architecture import Architecture, EstimateError
from .params import AdapterPlan, Layout, plan_adapters, trainable_biases

GiB = 1024**3
MiB = 1024**2

# Config keys that change memory (also what `memory_signature` hashes).
MEMORY_KEYS = (
    "model.name_or_path", "model.dtype", "model.attn_implementation", "model.from_scratch",
    "model.hidden_dropout", "model.attention_dropout",
    "quantization.load_in_4bit", "quantization.load_in_8bit", "quantization.bnb_4bit_quant_type",
    "quantization.bnb_4bit_compute_dtype", "quantization.bnb_4bit_use_double_quant",
    "lora.enabled", "lora.r", "lora.target_modules", "lora.bias", "lora.use_dora", "lora.lora_dropout",
    "data.max_seq_length", "data.packing", "data.padding",
    "training.per_device_train_batch_size", "training.gradient_checkpointing", "training.bf16",
    "training.fp16", "training.optim", "training.gradient_accumulation_steps",
    "launch.num_processes", "launch.num_machines", "launch.strategy", "launch.zero_stage",
    "launch.mixed_precision",
)
# The architecture fields, which only matter when the model is built from scratch.
SCRATCH_KEYS = ("model.model_type", "model.num_hidden_layers", "model.hidden_size", "model.intermediate_size",
                "model.num_attention_heads", "model.num_key_value_heads", "model.vocab_size",
                "model.max_position_embeddings")

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
FP32 = 4
BOOL = 1  # a dropout mask stores one byte per element

# --- fixed costs (measured typical values on recent NVIDIA GPUs with PyTorch 2.x) -----------------
CUDA_CONTEXT = 500 * MiB  # driver context, kernels and cuBLAS/cuDNN handles loaded by PyTorch
NCCL_BUFFERS = 400 * MiB  # communicator buffers when more than one process trains
ALLOCATOR_OVERHEAD = 0.06  # caching-allocator fragmentation: reserved exceeds allocated by a few %
WORKSPACE = 64 * MiB  # cuBLAS workspaces and small buffers

# --- quantized storage ----------------------------------------------------------------------------
BNB_4BIT_BLOCK = 64  # bitsandbytes 4-bit: one absmax per 64 weights
DOUBLE_QUANT_BLOCK = 256  # double quant: 8-bit absmax, one fp32 scale per 256 absmax values
NF4_BYTES = 0.5 + FP32 / BNB_4BIT_BLOCK  # 4 bits per weight + an fp32 absmax per block
NF4_DQ_BYTES = 0.5 + 1 / BNB_4BIT_BLOCK + FP32 / (BNB_4BIT_BLOCK * DOUBLE_QUANT_BLOCK)  # absmax in 8 bits
INT8_BYTES = 1  # LLM.int8 stores one byte per weight plus one fp32 scale per output row
KBIT_UPCAST = True  # prepare_model_for_kbit_training casts every non-quantized 16-bit weight to fp32


def settings(config: Config) -> dict[str, Any]:
    """The memory-relevant values of a config, keyed "section.name"."""
    out: dict[str, Any] = {}
    for key in MEMORY_KEYS + SCRATCH_KEYS:
        section, name = key.split(".", 1)
        value = getattr(getattr(config, section), name)
        out[key] = list(value) if isinstance(value, list) else value
    return out


@dataclass
class Component:
    name: str
    bytes: int
    detail: str = ""
    evictable: bool = False  # paged optimizer state: may move to CPU memory under pressure


@dataclass
class Breakdown:
    phases: dict[str, int]  # total bytes at "forward", "backward", "optimizer step"
    phase: str  # the largest
    components: list[Component]  # at the peak phase; they sum to the peak
    params_total: int
    params_trainable: int
    notes: list[str] = field(default_factory=list)
    tensors: dict[str, int] = field(default_factory=dict)  # tensor bytes alone per phase (what a simulation sees)

    @property
    def peak_bytes(self) -> int:
        return self.phases[self.phase]


@dataclass(frozen=True)
class _Precision:
    weight: int  # bytes per stored (non-quantized) weight
    act: int  # bytes per activation coming out of a matmul
    residual: int  # bytes per value of the residual stream and norm outputs
    mixed: str  # "bf16", "fp16" or "no"
    kbit: str  # "4bit", "8bit" or ""
    block_out: int = 2  # bytes per value out of a block linear fed by the residual stream (see kbit_linear_out)
    attn: int = 2  # bytes per value the attention kernel keeps (q, k, v, output)


def _precision(arch: Architecture, s: dict[str, Any]) -> _Precision:
    dtype = s["model.dtype"] if s["model.dtype"] != "auto" else arch.dtype
    weight = DTYPE_BYTES[dtype]
    mixed = mixed_precision(s)
    kbit = "4bit" if s["quantization.load_in_4bit"] else "8bit" if s["quantization.load_in_8bit"] else ""
    compute = weight
    if kbit == "4bit":
        compute = DTYPE_BYTES[s["quantization.bnb_4bit_compute_dtype"]]
    elif kbit == "8bit":
        compute = 2  # int8 matmuls return fp16
    act = 2 if mixed != "no" else compute
    residual = FP32 if weight == FP32 or (kbit and KBIT_UPCAST) else weight
    block_out = kbit_linear_out(act, residual, kbit)
    attn = act if mixed != "no" else block_out  # autocast runs SDPA in 16 bits; without it, q/k/v's own dtype
    return _Precision(weight, act, residual, mixed, kbit, block_out, attn)


def kbit_linear_out(act: int, residual: int, kbit: str) -> int:
    """Bytes per output value of a block linear whose input is the residual stream (term 2 of issue #14).

    bitsandbytes' k-bit linears cast their input to the compute dtype and their output back to the
    input's dtype; after prepare_model_for_kbit_training the norms feeding them are fp32, so q/k/v, gate
    and up come out in fp32 even under autocast (and so do the MLP intermediates built from them).
    Plain linears return the autocast (or compute) dtype.
    """
    return residual if kbit else act


def mixed_precision(s: dict[str, Any]) -> str:
    """"bf16", "fp16" or "no": what autocast runs in (launch.mixed_precision, or the training flags)."""
    return resolve_mixed_precision(s["launch.mixed_precision"], s["training.bf16"], s["training.fp16"])


def builds_attention_mask(s: dict[str, Any]) -> bool:
    """Whether transformers builds a 4-D attention mask on the GPU (the simulation feeds inputs to match).

    Eager attention always adds one; flash-attn never needs one; SDPA needs one when rows carry padding:
    several rows padded to the longest one, or padding to max_length. A single unpadded row uses the
    kernel's causal flag instead.
    """
    impl = s["model.attn_implementation"]
    if impl == "flash_attention_2":
        return False
    if impl == "eager":
        return True
    return int(s["training.per_device_train_batch_size"]) > 1 or s["data.padding"] == "max_length"


def breakdown(arch: Architecture, lay: Layout, s: dict[str, Any]) -> Breakdown:
    """Memory per GPU for these settings; raises EstimateError for combinations that cannot train."""
    p = _precision(arch, s)
    notes: list[str] = []
    lora = bool(s["lora.enabled"])
    if p.kbit and not lora:
        raise EstimateError("4-bit or 8-bit loading trains nothing without LoRA: set lora.enabled = true")
    world = max(1, int(s["launch.num_processes"])) * max(1, int(s["launch.num_machines"]))
    strategy = s["launch.strategy"]
    if strategy == "none" and world > 1:
        strategy = "ddp"  # accelerate's default for several processes
    zero = int(s["launch.zero_stage"]) if strategy == "deepspeed" else 0
    fsdp = strategy == "fsdp"
    L, h = lay.num_layers, arch.hidden_size

    # ---- parameters ------------------------------------------------------------------------
    plan: AdapterPlan | None = None
    if lora:
        plan = plan_adapters(arch, lay, s["lora.target_modules"], int(s["lora.r"]), bool(s["lora.use_dora"]))
        if plan.unmatched:
            notes.append(f"lora.target_modules {list(plan.unmatched)} match nothing in this model (ignored)")
        biases = trainable_biases(lay, plan, s["lora.bias"])
        params_total = lay.total + plan.params
        trainable = plan.params + biases
        train_bytes = FP32  # peft keeps adapters in fp32 even on a 16-bit base (autocast_adapter_dtype)
    else:
        params_total = trainable = lay.total
        train_bytes = p.weight

    # ---- weights -----------------------------------------------------------------------------
    frozen = 0.0
    frozen_detail = ""
    if lora:
        block_w = L * lay.block_linear_weights  # every linear weight inside the blocks
        other = lay.total - block_w  # embeddings, norms, biases, untied head
        if p.kbit == "4bit":
            per = NF4_DQ_BYTES if s["quantization.bnb_4bit_use_double_quant"] else NF4_BYTES
            quantized = block_w * per  # packed 4-bit codes and their block scales
            rest_bytes = FP32 if KBIT_UPCAST else p.weight
            frozen_detail = (f"{block_w / 1e9:.2f}B linear weights at {per:.3f} B each "
                             f"({s['quantization.bnb_4bit_quant_type']}), the rest at {rest_bytes} B")
        elif p.kbit == "8bit":
            quantized = block_w * INT8_BYTES + L * sum(lin.out_features for lin in lay.linears) * FP32  # + row scales
            rest_bytes = FP32 if KBIT_UPCAST else p.weight
            frozen_detail = f"{block_w / 1e9:.2f}B linear weights in int8, the rest at {rest_bytes} B"
        else:
            quantized, rest_bytes = block_w * p.weight, p.weight
            frozen_detail = f"{lay.total / 1e9:.2f}B base weights at {p.weight} B"
        frozen = quantized + other * rest_bytes  # the base model, all of it frozen
        if p.kbit and KBIT_UPCAST:
            frozen_detail += " (embeddings, norms and head upcast to fp32 for k-bit training)"
    trainable_w = trainable * train_bytes  # weights the optimizer updates
    train_detail = f"{trainable / 1e6:,.1f}M params at {train_bytes} B"
    copy = 0.0
    if p.mixed != "no" and train_bytes == FP32:
        copy = trainable * 2  # autocast caches a 16-bit copy of each trainable weight for forward and backward
        train_detail += " + 16-bit autocast copy"
    master = 0.0
    if zero and p.mixed != "no" and train_bytes == 2:
        master = trainable * FP32  # DeepSpeed keeps fp32 master weights for 16-bit training
        train_detail += " + fp32 master copy"

    # ---- gradients and optimizer -----------------------------------------------------------------
    grads = trainable * train_bytes  # one gradient per trainable weight, in its dtype
    grad_detail = f"{train_bytes} B per trainable param"
    if strategy == "ddp" and world > 1:
        grads *= 2  # DDP copies gradients into its all-reduce buckets
        grad_detail += ", doubled by DDP's all-reduce buckets"
    opt = optimizers.spec(s["training.optim"])
    if opt.note:
        notes.append(f"optim {s['training.optim']}: {opt.note}")
    state_bytes = opt.state_bytes if opt.state_bytes is not None else train_bytes
    if opt.factored:
        matrices = _trainable_matrices(arch, lay, plan)
        # Adafactor: one row vector + one column vector per matrix instead of a full second moment
        optim = sum(n * (rows + cols) for rows, cols, n in matrices) * state_bytes
        optim += max(0, trainable - sum(n * rows * cols for rows, cols, n in matrices)) * state_bytes  # 1-D params
        opt_detail = "factored second moment (rows + columns per matrix)"
    else:
        optim = trainable * opt.states * state_bytes  # e.g. AdamW: 2 moments per trainable weight
        opt_detail = f"{opt.states:g} state(s) x {state_bytes:.3g} B per trainable param"
    step_temp = trainable * opt.step_temp * state_bytes  # foreach AdamW: one full-size temporary list
    if opt.paged:
        opt_detail += "; paged: can move to CPU memory under pressure"

    # ---- sharding: FSDP and ZeRO divide what they shard by the number of processes ----------------
    gathered = 0.0
    if fsdp or zero == 3:
        trainable_w, frozen, copy = trainable_w / world, frozen / world, copy / world
        # two unsharded blocks in flight (the current one and the prefetched next one)
        gathered = 2 * lay.block_params * (train_bytes if not lora else p.weight)
    if fsdp or zero >= 2:
        grads /= world
    if fsdp or zero >= 1:
        optim, master, step_temp = optim / world, master / world, step_temp / world
    if world > 1:
        shard = "sharded" if (fsdp or zero) else "replicated"
        notes.append(f"{world} processes, {strategy}{f' ZeRO-{zero}' if zero else ''}: per-GPU figures ({shard})")

    # ---- activations -------------------------------------------------------------------------------
    b = int(s["training.per_device_train_batch_size"])
    seq = int(s["data.max_seq_length"])
    tokens = b * seq
    if s["data.padding"] == "longest" and not s["data.packing"]:
        notes.append("activations assume every batch is padded to max_seq_length (the worst case)")
    per_token = _layer_bytes_per_token(arch, lay, s, p, plan)
    quad = _attention_quadratic(arch, s, p, b, seq)  # eager attention's s x s matrices, per layer
    # autocast casts each frozen fp32 weight at its matmul and the copy is kept for backward (LoRA on an
    # fp32 checkpoint; k-bit weights are dequantized instead, trained weights are cached once in `copy`)
    block_copies = lay.block_linear_weights * 2 if lora and p.mixed != "no" and p.weight == FP32 and not p.kbit else 0
    layer = tokens * per_token + quad + block_copies  # everything one block keeps for backward
    mask = _mask_bytes(arch, s, p, b, seq)  # one attention mask shared by every layer
    edges = tokens * (p.residual * h + FP32 * h + p.residual * h)  # embedding output, final norm input/output
    if s["training.gradient_checkpointing"]:
        act_fwd = L * tokens * p.residual * h + mask + edges  # only each block's input is kept
        act_bwd = act_fwd  # + one recomputed block, once the loss's buffers are gone (checkpointed_backward)
        act_detail = f"checkpointed: {L} block inputs + 1 recomputed block ({_gib(layer)})"
    else:
        act_fwd = act_bwd = L * layer + mask + edges
        act_detail = f"{L} blocks x {_gib(layer)}"
    if quad:
        what = "eager attention's seq x seq scores" if s["model.attn_implementation"] == "eager" else \
            "SDPA's additive mask"
        act_detail += f"; {what} {_gib(quad)} per block"

    # ---- logits and loss over the vocabulary ----------------------------------------------------------
    logit_elems = tokens * arch.vocab_size  # batch x seq x vocab
    upcast = FP32 if p.act != FP32 else 0  # the loss casts 16-bit logits to fp32 first
    softcap = p.act if arch.final_logit_softcapping else 0  # gemma2 keeps tanh(logits / cap) for backward
    logits_fwd = logit_elems * (p.act + upcast + FP32 + softcap)  # logits, fp32 copy, log-softmax output
    logits_bwd = logit_elems * (FP32 + FP32 + FP32 + softcap)  # log-softmax output, its gradient, the input gradient
    logits_detail = f"{b} x {seq} x {arch.vocab_size:,} vocab"
    head_copy = frozen_head_copy(arch, p, lora)
    if head_copy:  # lives as long as the logits' buffers: until the head's backward
        logits_fwd += head_copy
        logits_bwd += head_copy
        logits_detail += f" + 16-bit copy of the fp32 head ({_gib(head_copy)})"

    # ---- temporaries ---------------------------------------------------------------------------------
    widest = max(arch.intermediate_size, arch.num_heads * arch.head_dim + 2 * arch.num_kv_heads * arch.head_dim)
    bwd_temp = 3 * tokens * widest * p.act  # gradients of the widest block intermediates in flight
    dequant = 0.0
    if p.kbit:
        big = lay.largest_linear
        dequant = big.in_features * big.out_features * 2  # one k-bit weight dequantized to 16-bit per matmul
    fixed = CUDA_CONTEXT + (NCCL_BUFFERS if world > 1 else 0)

    accumulating = int(s["training.gradient_accumulation_steps"]) > 1
    weights = frozen + trainable_w + master + gathered
    fwd = {"weights": weights + copy, "grads": grads if accumulating else 0.0, "optim": optim,
           "act": act_fwd, "logits": logits_fwd, "temp": dequant}
    held = {"weights": weights + copy, "grads": grads if accumulating else 0.0, "optim": optim}
    bwd_start = {**held, "act": act_bwd, "logits": logits_bwd, "temp": dequant}
    if s["training.gradient_checkpointing"]:
        bwd_start = checkpointed_backward(bwd_start, layer, bwd_temp)
    else:
        bwd_start["temp"] += bwd_temp
    tied_sum = tied_gradient_sum(arch, lora, train_bytes)
    bwd_end = {**held, "grads": grads + tied_sum, "act": layer if s["training.gradient_checkpointing"] else 0.0,
               "logits": 0.0, "temp": bwd_temp + dequant}
    bwd = bwd_start if sum(bwd_start.values()) >= sum(bwd_end.values()) else bwd_end
    step = {"weights": weights, "grads": grads, "optim": optim, "act": 0.0, "logits": 0.0, "temp": step_temp}
    moments = {"forward": fwd, "backward": bwd, "optimizer step": step}

    def total(parts: dict[str, float]) -> int:
        dynamic = sum(parts.values())
        return int(fixed + dynamic * (1 + ALLOCATOR_OVERHEAD) + WORKSPACE)

    phases = {name: total(parts) for name, parts in moments.items()}
    phase = max(phases, key=lambda k: phases[k])
    parts = moments[phase]
    w_share = (trainable_w + copy + master) if phase != "optimizer step" else (trainable_w + master)
    gathered_note = f"; + 2 unsharded blocks in flight ({_gib(gathered)})" if gathered else ""
    components = [
        Component("CUDA context", fixed, "driver context and kernels" + (" + NCCL buffers" if world > 1 else "")),
        Component("frozen weights", int(frozen + (gathered if lora else 0)), (frozen_detail or "none: every weight trains")
                  + (gathered_note if lora else "")),
        Component("trainable weights", int(w_share + (0 if lora else gathered)), train_detail
                  + ("" if lora else gathered_note)),
        Component("gradients", int(parts["grads"]), grad_detail if parts["grads"] else
                  "none yet (freed after each optimizer step)"),
        Component("optimizer state", int(optim), f"{s['training.optim']}: {opt_detail}", evictable=opt.paged),
        Component("activations", int(parts["act"]), act_detail if parts["act"] else "freed before the step"),
        Component("logits & loss", int(parts["logits"]), logits_detail if parts["logits"] else "freed before the step"),
    ]
    dynamic = sum(parts.values())
    overhead = phases[phase] - sum(c.bytes for c in components)
    components.append(Component("overhead", overhead,
                                f"temporaries {_gib(parts['temp'])}, allocator {ALLOCATOR_OVERHEAD:.0%} of "
                                f"{_gib(dynamic)}, workspaces"))
    tensors = {name: int(sum(parts.values())) for name, parts in moments.items()}
    return Breakdown(phases, phase, components, params_total, trainable, notes, tensors)


def frozen_head_copy(arch: Architecture, p: _Precision, lora: bool) -> float:
    """Bytes of the 16-bit copy autocast makes of a frozen fp32 output head and keeps for backward.

    Autocast caches casts only of weights that train; a frozen fp32 head (k-bit training upcasts it, and
    fp32 checkpoints keep it) is cast at its matmul and the copy is saved for the input's gradient.
    """
    if not lora or p.mixed == "no" or not ((p.kbit and KBIT_UPCAST) or p.weight == FP32):
        return 0.0
    return float(arch.vocab_size * arch.hidden_size * 2)


def checkpointed_backward(loss_moment: dict[str, float], block: float, block_temp: float) -> dict[str, float]:
    """The start of backward with gradient checkpointing (term 3 of issue #14).

    First the loss's buffers over the vocabulary live beside the kept block inputs; they are freed before
    the last block is recomputed, so the peak is the larger of (kept + loss backward) and (kept + one
    recomputed block + its gradient temporaries), not their sum.
    """
    recompute = {**loss_moment, "logits": 0.0, "act": loss_moment["act"] + block,
                 "temp": loss_moment["temp"] + block_temp}
    return loss_moment if sum(loss_moment.values()) >= sum(recompute.values()) else recompute


def tied_gradient_sum(arch: Architecture, lora: bool, train_bytes: int) -> float:
    """Extra bytes at the end of backward when a trained embedding is tied to the output head (term 5).

    Both uses of the one weight send it a full vocab x hidden gradient; autograd adds them out of place,
    so the head's gradient, the embedding's gradient and their sum exist at once: two more copies.
    """
    if lora or not arch.tie_word_embeddings:
        return 0.0
    return 2.0 * arch.vocab_size * arch.hidden_size * train_bytes


def _gib(n: float) -> str:
    return f"{n / GiB:.2f} GiB"


def _trainable_matrices(arch: Architecture, lay: Layout, plan: AdapterPlan | None) -> list[tuple[int, int, int]]:
    """(rows, cols, count) of every trainable 2-D weight, for factored optimizers."""
    if plan is None:
        mats = [(lin.out_features, lin.in_features, lay.num_layers) for lin in lay.linears]
        mats.append((arch.vocab_size, arch.hidden_size, 1))
        if lay.head:
            mats.append((arch.vocab_size, arch.hidden_size, 1))
        return mats
    r = plan.rank
    mats = []
    for lin, n in plan.per_block:
        mats += [(r, lin.in_features, n), (lin.out_features, r, n)]  # lora_A and lora_B
    return mats


def _group(width: int, saves: int, adapters: int, dropout: bool, x_bytes: int, p: _Precision, rank: int) -> float:
    """Bytes per token kept for backward by the linears sharing one input of `width` features.

    saves: linears whose own weight trains (they keep their input, one 16-bit copy each when autocast has
    to cast it); adapters: LoRA adapters on them (`adapter_input_bytes`); x_bytes: the input's dtype size.
    """
    kept = 0.0
    if saves:
        kept += width * p.act * (saves if x_bytes != p.act else 1)
    return kept + adapter_input_bytes(width, adapters, dropout, x_bytes, p.mixed != "no", rank)


def adapter_input_bytes(width: int, adapters: int, dropout: bool, x_bytes: int, autocast: bool, rank: int,
                        adapter_bytes: int = FP32) -> float:
    """Bytes per token LoRA adapters on one `width`-wide input keep for backward (term 1 of issue #14).

    peft casts the input to the adapter's dtype (fp32) separately in each adapter (`_cast_input_dtype`), so
    sibling adapters share nothing: each keeps what its lora_A computes on (the 16-bit autocast copy, or
    the fp32 input without autocast) plus a one-byte dropout mask, and lora_A's rank-wide output. Only an
    input already in fp32, without autocast and without dropout, is the same storage for all of them.
    """
    if not adapters:
        return 0.0
    computes = 2 if autocast else adapter_bytes  # what lora_A's matmul reads and saves
    if dropout:
        kept = adapters * width * (computes + BOOL)
    elif not autocast and x_bytes == adapter_bytes:
        kept = width * adapter_bytes  # no cast anywhere: every adapter saves the input itself
    else:
        kept = adapters * width * computes
    return kept + adapters * rank * computes


def _layer_bytes_per_token(arch: Architecture, lay: Layout, s: dict[str, Any], p: _Precision,
                           plan: AdapterPlan | None) -> float:
    """Bytes one transformer block keeps for backward, per token (without eager attention's s^2 part)."""
    h, i = arch.hidden_size, arch.intermediate_size
    q = arch.num_heads * arch.head_dim
    kv = arch.num_kv_heads * arch.head_dim
    full = plan is None
    adapted = {lin.path for lin, n in plan.per_block} if plan else set()
    dropout = bool(plan) and float(s["lora.lora_dropout"]) > 0
    rank = int(s["lora.r"]) if plan else 0
    mlp_bytes = p.block_out  # gate/up outputs and what the activation and the product keep

    def group(paths: tuple[str, ...], width: int, x_bytes: int, kept_already: bool = False) -> float:
        # kept_already: the input is a tensor another op keeps anyway (the attention output, which the
        # kernel saves and o_proj reads without a copy): a trained linear adds nothing for it (term 4)
        saves = len(paths) if full and not kept_already else 0
        n_adapted = sum(path in adapted for path in paths)
        return _group(width, saves, n_adapted, dropout, x_bytes, p, rank)

    norm = FP32 * h + (p.residual * h if full else 0)  # RMS/LayerNorm keeps its fp32 input (+ output for its weight grad)
    flash = s["model.attn_implementation"] == "flash_attention_2"
    b = int(s["training.per_device_train_batch_size"])
    repeat = not flash and arch.num_kv_heads < arch.num_heads and (
        b > 1 or s["model.attn_implementation"] == "eager" or s["data.padding"] == "max_length")
    kv_kept = q if repeat else kv  # with a mask, k and v are expanded to every query head
    lse = FP32 * arch.num_heads  # fused attention's per-head log-sum-exp
    resid_dropout = float(s["model.hidden_dropout"]) > 0 and arch.family in ("gpt2", "phi3")
    drop_masks = 2 * h * BOOL if resid_dropout else 0  # residual dropout after attention and after the MLP

    if arch.family == "gpt2":
        attn = (group(("attn.c_attn",), h, p.residual)
                + 3 * h * p.attn  # fused q/k/v output, kept whole by the attention kernel's views
                + h * p.attn + lse  # attention output + log-sum-exp
                + group(("attn.c_proj",), h, p.attn, kept_already=True))
        mlp = (group(("mlp.c_fc",), h, p.residual)
               + 4 * i * mlp_bytes  # gelu_new's tanh formula keeps x, tanh, 0.5x and 1+tanh
               + group(("mlp.c_proj",), i, mlp_bytes))
        norms = 2 * (p.residual * h + (p.residual * h if full else 0))  # LayerNorm input (+ output for its grads)
        return norms + attn + mlp + drop_masks
    if arch.family == "phi3":
        attn = (group(("self_attn.qkv_proj",), h, p.residual)
                + (q + 2 * kv) * p.attn  # fused qkv output kept whole through the v view
                + (q + kv) * p.attn  # rotated q and k
                + (2 * (q - kv) * p.attn if repeat else 0)  # expanded k and v
                + q * p.attn + lse + group(("self_attn.o_proj",), q, p.attn, kept_already=True))
        mlp = (group(("mlp.gate_up_proj",), h, p.residual) + 2 * i * mlp_bytes + i * mlp_bytes
               + group(("mlp.down_proj",), i, mlp_bytes))
        return 2 * norm + attn + mlp + drop_masks
    attn = (group(("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), h, p.residual)
            + q * p.attn + 2 * kv_kept * p.attn  # rotated q and k, and v, as the attention kernel keeps them
            + q * p.attn + lse  # attention output and log-sum-exp
            + group(("self_attn.o_proj",), q, p.attn, kept_already=True))
    mlp = (group(("mlp.gate_proj", "mlp.up_proj"), h, p.residual)
           + 3 * i * mlp_bytes  # gate output, activation output and up output, kept by the act and the product
           + group(("mlp.down_proj",), i, mlp_bytes))
    norms = (4 if arch.family == "gemma2" else 2) * norm
    return norms + attn + mlp


def _attention_quadratic(arch: Architecture, s: dict[str, Any], p: _Precision, b: int, seq: int) -> float:
    """Eager attention keeps batch x heads x seq x seq probabilities per layer; fused kernels keep none,
    but SDPA's memory-efficient kernel, which takes the mask, converts the boolean mask to an additive one
    in the query dtype (last dim padded to 16) in every layer and keeps it for backward."""
    if s["model.attn_implementation"] == "sdpa":
        return b * seq * (-(-seq // 16) * 16) * p.attn if builds_attention_mask(s) else 0.0
    if s["model.attn_implementation"] != "eager":
        return 0.0
    scores = b * arch.num_heads * seq * seq
    per = FP32 + p.act  # fp32 softmax output + its 16-bit cast fed to the value matmul
    if float(s["model.attention_dropout"]) > 0:
        per += BOOL  # dropout mask on the probabilities
    if p.act == FP32:
        per = FP32 + (BOOL + FP32 if float(s["model.attention_dropout"]) > 0 else 0)  # softmax output serves both
    return scores * per


def _mask_bytes(arch: Architecture, s: dict[str, Any], p: _Precision, b: int, seq: int) -> float:
    """The attention mask transformers builds once per forward (none for flash attention)."""
    if s["model.attn_implementation"] == "flash_attention_2":
        return 0.0
    if s["model.attn_implementation"] == "eager":
        return b * seq * seq * p.act  # additive float mask
    return b * seq * seq * BOOL if b > 1 else 0.0  # boolean mask; batch 1 uses the causal kernel flag
