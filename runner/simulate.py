"""Peak memory of one real training step of the exact model, simulated on fake tensors (no GPU, no weights).

    python -m runner.simulate PRESET [--set section.key=value ...] [--json]
    python -m runner.simulate --config-json FILE|-  [--json]      # a resolved config (what the editor sends)

The model is built from its config alone (a local directory's config.json, one already in the Hugging Face
cache, the estimator's built-in table, the from-scratch fields or the tiny demo) under torch's
`FakeTensorMode`: every tensor has a shape, a dtype and a size but no data, so an 8B model costs no memory.
Then one training step runs with the preset's settings the way the runner's Trainer runs it: peft LoRA on
the configured targets, `prepare_model_for_kbit_training` for 4-bit loading, gradient checkpointing,
autocast and accelerate's fp32 conversion of the outputs, the loss, backward, gradient clipping and the
optimizer step. A dispatch mode counts the bytes of every storage alive after every operation, so the peak
of each phase is the real one of this exact model and these settings.

Fake tensors live on the CPU (fake "cuda" tensors abort in backward on a CPU-only torch), so where the CPU
kernels keep other tensors than the GPU ones, the GPU behaviour is put in (see `_gpu_kernels`):
- attention: SDPA's CPU path can materialise seq x seq scores; on the GPU the flash / memory-efficient
  kernels keep only their output and a log-sum-exp (and, with a mask, the mask converted to the query dtype);
- dropout: the CPU keeps a noise tensor in the input's dtype, CUDA a one-byte mask (`native_dropout`);
- the attention mask: transformers sees fake tensors as tracing and would always build a mask; here the
  inputs carry a padding mask exactly when a GPU run would need one (`runner.estimate.memory.builds_attention_mask`).
- 4-bit weights: bitsandbytes cannot be instantiated without CUDA, so each quantized linear is replaced by
  `_Linear4bitStandIn`, which stores what bitsandbytes stores (packed uint8 codes and block scales) and
  behaves as `bnb.nn.Linear4bit` does for memory: input cast to the compute dtype, the weight dequantized
  only for the matmul, nothing but the packed weight kept for backward, output cast back to the input's dtype.
What a simulation cannot see (the CUDA context, the caching allocator's reserve and fragmentation, cuBLAS
workspaces, NCCL buffers) is added from the analytic model and labelled as such.

This module imports torch, transformers and peft: it runs only in its own subprocess (`run_subprocess`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Any

PHASES = ("forward", "backward", "optimizer step")
CATEGORIES = ("weights", "gradients", "optimizer state", "activations & temporaries")
SNAPSHOT_STEP = 0.005  # re-split the live bytes into categories when the phase peak grows by 0.5%


class SimulationError(Exception):
    """A config this simulation cannot run; the message says why."""


# --------------------------------------------------------------------------------------------------
# The caller's side: no torch here.
# --------------------------------------------------------------------------------------------------
def run_subprocess(config_data: dict[str, Any], timeout: float = 600.0) -> dict[str, Any]:
    """Simulate a resolved config (Config.model_dump()) in a fresh interpreter; returns the JSON result.

    Raises SimulationError with the child's message when it fails.
    """
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    try:
        proc = subprocess.run([sys.executable, "-m", "runner.simulate", "--config-json", "-", "--json"],
                              input=json.dumps(config_data, default=str), capture_output=True, text=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        raise SimulationError(f"the simulation did not finish within {timeout:.0f} s") from exc
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else None
    except ValueError:
        result = None
    if proc.returncode != 0 or not isinstance(result, dict):
        message = result.get("error") if isinstance(result, dict) else None
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SimulationError(message or f"the simulation failed: {tail[:300]}")
    return result


_RESULTS: dict[str, dict[str, Any]] = {}  # memory signature -> the last simulation of it (this process)


def remember(signature: str, result: dict[str, Any]) -> None:
    """Keep a simulation's result for the config with this memory signature (the launch dialog shows it)."""
    _RESULTS[signature] = result


def recalled(signature: str) -> dict[str, Any] | None:
    return _RESULTS.get(signature)


def summary_line(result: dict[str, Any]) -> str:
    """'simulated: 11.2 GiB (backward, 4.1 s)': what the gauge and the launch dialog print."""
    return f"simulated: {result['peak_bytes'] / 1024**3:.1f} GiB ({result['phase']}, {result['seconds']:.1f} s)"


# --------------------------------------------------------------------------------------------------
# Live-bytes accounting
# --------------------------------------------------------------------------------------------------
def _tracker_class():
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class LiveBytes(TorchDispatchMode):
        """Counts the bytes of every distinct storage alive; a weakref per storage says when it dies."""

        def __init__(self) -> None:
            super().__init__()
            self.live = 0
            self.phase = "setup"
            self.peaks: dict[str, int] = {}
            self.split: dict[str, dict[str, int]] = {}  # categories near each phase's peak
            self._refs: dict[int, Any] = {}
            self._snapshot_at = 0
            self.categorise = None  # set by the driver: live bytes -> {category: bytes}

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            grew = False
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    grew |= self.track(t)
            if grew:
                self._note_peak()
            return out

        def track(self, t) -> bool:
            st = t.untyped_storage()
            key = st._cdata
            if key in self._refs:
                return False
            n = st.nbytes()
            self._refs[key] = weakref.ref(st, self._release(key, n))
            self.live += n
            return True

        def _release(self, key: int, n: int):
            def release(_ref) -> None:
                if self._refs.pop(key, None) is not None:
                    self.live -= n
            return release

        def _note_peak(self) -> None:
            if self.live <= self.peaks.get(self.phase, -1):
                return
            self.peaks[self.phase] = self.live
            if self.categorise and self.live >= self._snapshot_at:
                self.split[self.phase] = self.categorise(self.live)
                self._snapshot_at = int(self.live * (1 + SNAPSHOT_STEP))

        def enter(self, phase: str) -> None:
            self.phase = phase
            self.peaks[phase] = self.live
            self._snapshot_at = 0
            self._note_peak()
            self._snapshot_at = 0
            if self.categorise:
                self.split[phase] = self.categorise(self.live)

    return LiveBytes


# --------------------------------------------------------------------------------------------------
# GPU kernels' memory behaviour on fake CPU tensors
# --------------------------------------------------------------------------------------------------
_PATCHED = False


def _gpu_kernels() -> None:
    """Replace the CPU kernels whose saved tensors differ from CUDA's by stand-ins that keep what CUDA keeps."""
    global _PATCHED
    if _PATCHED:
        return
    _PATCHED = True
    import torch
    import torch.nn.functional as F

    def autocast_dtype():
        return torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None

    class FusedAttention(torch.autograd.Function):
        """Flash / memory-efficient attention: out + fp32 log-sum-exp kept; no seq x seq scores."""

        @staticmethod
        def forward(ctx, q, k, v, bias):
            # the kernels write (batch, seq, heads, dim) and return it transposed, so transformers' following
            # transpose(1, 2).contiguous() is free and o_proj's input is this very storage
            b, h, s, _ = q.shape
            out = q.new_empty(b, s, h, v.shape[-1]).transpose(1, 2)
            lse = q.new_empty(q.shape[:-1], dtype=torch.float32)
            ctx.save_for_backward(q, k, v, out, lse, bias)
            return out

        @staticmethod
        def backward(ctx, grad):
            q, k, v, out, lse, bias = ctx.saved_tensors
            # the kernel's own temporaries: fp32 dq accumulator and row sums; k/v gradients per query head
            # under grouped-query attention, summed to the key/value heads at the end
            scratch = [q.new_empty(q.shape, dtype=torch.float32), q.new_empty(q.shape[:-1], dtype=torch.float32)]
            if k.shape[-3] != q.shape[-3]:
                scratch += [q.new_empty(q.shape[:-1] + (k.shape[-1],)), q.new_empty(q.shape[:-1] + (v.shape[-1],))]
            grads = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
            del scratch
            return (*grads, None)

    def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                                     scale=None, enable_gqa=False):
        dtype = autocast_dtype()
        if dtype is not None:  # CUDA autocast runs SDPA in the lower precision: the casts are what it keeps
            query, key, value = (t.to(dtype) if t.dtype == torch.float32 else t for t in (query, key, value))
        bias = None
        if attn_mask is not None:
            # the memory-efficient kernel takes an additive mask in the query dtype, its last dim padded to 16
            s_q, s_k = query.shape[-2], key.shape[-2]
            padded = math.ceil(s_k / 16) * 16
            bias = query.new_empty(attn_mask.shape[:-2] + (s_q, padded))
        return FusedAttention.apply(query, key, value, bias)

    def dropout(input, p=0.5, training=True, inplace=False):
        if not training or p == 0.0:
            return input
        return torch.native_dropout(input, p, True)[0]  # CUDA's fused dropout keeps a one-byte mask

    F.scaled_dot_product_attention = scaled_dot_product_attention

    # transformers reads position ids to detect several documents packed in one row; on fake tensors it
    # cannot read them and assumes packing, which builds a mask (and expands k/v) even for one unpadded row.
    # The simulated rows are single sequences: what a GPU run without packing sees.
    import transformers.masking_utils as masking

    masking.find_packed_sequence_indices = lambda position_ids: None
    torch.nn.functional.dropout = dropout

    # Optimizers read their step count with .item(), which fake tensors cannot answer; the count does not
    # change what memory a step uses.
    from torch._subclasses.fake_tensor import is_fake
    import torch.optim.adam as adam
    import torch.optim.adagrad as adagrad

    for module in (adam, adagrad):
        original = module._get_value
        module._get_value = lambda x, _o=original: 1.0 if isinstance(x, torch.Tensor) and is_fake(x) else _o(x)

    # Module.to() swaps fake parameters in place, which fails when anything holds a weak reference to them
    # (torch 2.13); setting .data moves them just as well.
    swap = torch.utils.swap_tensors

    def swap_tensors(t1, t2):
        try:
            return swap(t1, t2)
        except RuntimeError:
            with torch.no_grad():
                t1.data = t2.data

    torch.utils.swap_tensors = swap_tensors


def _linear4bit_class():
    import torch
    import torch.nn as nn

    class Matmul4bit(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, packed, out_features, in_features):
            w = x.new_empty(out_features, in_features)  # dequantized for this matmul only
            ctx.save_for_backward(packed)  # what bitsandbytes' MatMul4Bit keeps: the packed weight, no input
            ctx.shape = (out_features, in_features)
            return torch.nn.functional.linear(x, w)

        @staticmethod
        def backward(ctx, grad):
            (packed,) = ctx.saved_tensors
            w = grad.new_empty(ctx.shape)  # dequantized again for the input gradient
            return grad @ w, None, None, None

    class Linear4bitStandIn(nn.Linear):
        """bnb.nn.Linear4bit's storage and memory behaviour, for a fake-tensor step without CUDA.

        Stores the packed 4-bit codes (uint8, two per byte) and the block scales bitsandbytes stores (fp32
        per 64 weights, or with double quantization uint8 per 64 plus fp32 per 256 blocks); forward casts the
        input to the compute dtype, dequantizes the weight only for the matmul, keeps only the packed weight
        for backward and returns in the input's dtype (fp32 after prepare_model_for_kbit_training).
        Subclassing nn.Linear lets peft wrap it with its plain LoRA layer.
        """

        def __init__(self, base: nn.Linear, compute_dtype, double_quant: bool) -> None:
            nn.Module.__init__(self)
            self.in_features, self.out_features = base.in_features, base.out_features
            n = self.in_features * self.out_features
            self.weight = nn.Parameter(torch.empty((n + 1) // 2, 1, dtype=torch.uint8), requires_grad=False)
            blocks = math.ceil(n / 64)
            if double_quant:
                self.absmax = [torch.empty(blocks, dtype=torch.uint8),
                               torch.empty(math.ceil(blocks / 256), dtype=torch.float32),
                               torch.empty(256, dtype=torch.float32)]  # codes, nested scales, code book
            else:
                self.absmax = [torch.empty(blocks, dtype=torch.float32)]
            self.bias = base.bias
            self.compute_dtype = compute_dtype

        def forward(self, x):
            inp_dtype = x.dtype
            x = x.to(self.compute_dtype)
            out = Matmul4bit.apply(x, self.weight, self.out_features, self.in_features)
            if self.bias is not None:
                out = out + self.bias.to(self.compute_dtype)
            return out.to(inp_dtype)

    return Linear4bitStandIn


# --------------------------------------------------------------------------------------------------
# Building the model from its config
# --------------------------------------------------------------------------------------------------
def _hf_config(config):
    """The transformers config of the model `config` trains, without weights or network."""
    import transformers

    from runner.demo_spec import DEMO_MODEL
    from runner.estimate.known_models import lookup

    m = config.model
    if m.from_scratch:
        kwargs = dict(vocab_size=m.vocab_size, hidden_size=m.hidden_size, intermediate_size=m.intermediate_size,
                      num_hidden_layers=m.num_hidden_layers, num_attention_heads=m.num_attention_heads,
                      num_key_value_heads=m.num_key_value_heads, max_position_embeddings=m.max_position_embeddings)
        cfg = transformers.AutoConfig.for_model(m.model_type, **kwargs)
        if m.model_type == "gpt2":  # the runner's spelling of gpt2's sizes (train_model.load_model)
            cfg.n_embd, cfg.n_layer, cfg.n_head = m.hidden_size, m.num_hidden_layers, m.num_attention_heads
            cfg.n_inner, cfg.n_positions = m.intermediate_size, m.max_position_embeddings
        return cfg, "from-scratch fields"
    name = m.name_or_path.strip()
    if name == DEMO_MODEL:
        from runner.demo_spec import TINY_DEMO_CONFIG

        spec = dict(TINY_DEMO_CONFIG)
        return transformers.AutoConfig.for_model(spec.pop("model_type"), **spec), f"built-in demo model ({name})"
    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise SimulationError(f"{name} is a directory without config.json")
        try:
            return (transformers.AutoConfig.from_pretrained(str(local), trust_remote_code=m.trust_remote_code),
                    f"config.json in {local}")
        except (OSError, ValueError, KeyError) as exc:
            raise SimulationError(f"transformers cannot build a config from {local / 'config.json'}: {exc}") from exc
    try:
        cfg = transformers.AutoConfig.from_pretrained(name, trust_remote_code=m.trust_remote_code,
                                                      local_files_only=True)
        return cfg, f"HF cache ({name})"
    except (OSError, ValueError):
        pass
    known = lookup(name)
    if known is not None:
        spec = {k: v for k, v in known.items() if k != "dtype"}
        cfg = transformers.AutoConfig.for_model(spec.pop("model_type"), **spec)
        cfg.dtype = known.get("dtype")
        return cfg, f"built-in table ({name})"
    raise SimulationError(f"model {name!r} is not a local directory, not in the local Hugging Face cache and not "
                          f"in the built-in table; download its config (`huggingface-cli download {name} "
                          "config.json`) or point model.name_or_path at a directory holding it")


def _dtype(config, hf_cfg):
    import torch

    names = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
    if config.model.dtype != "auto":
        return names[config.model.dtype]
    if config.model.from_scratch:
        return torch.float32  # the runner builds a fresh model in torch's default dtype
    stored = getattr(hf_cfg, "dtype", None) or getattr(hf_cfg, "torch_dtype", None)
    if isinstance(stored, torch.dtype):
        return stored
    return names.get(str(stored).replace("torch.", ""), torch.float32)


def _build(config, notes: list[str]):
    """The model, prepared exactly as the runner prepares it (minus real weights)."""
    import torch
    import transformers

    from runner import train_model

    hf_cfg, source = _hf_config(config)
    m, q = config.model, config.quantization
    notes += train_model.apply_dropout(hf_cfg, m.hidden_dropout, m.attention_dropout)
    impl = m.attn_implementation
    if impl == "flash_attention_2":
        impl = "sdpa"  # flash-attn is a CUDA package; its memory is that of SDPA's flash kernel without a mask
        notes.append("flash_attention_2 simulated as SDPA's flash kernel (same kept tensors)")
    hf_cfg._attn_implementation = impl
    hf_cfg.use_cache = False  # the Trainer trains without a KV cache
    dtype = _dtype(config, hf_cfg)
    try:
        model = transformers.AutoModelForCausalLM.from_config(hf_cfg, dtype=dtype,
                                                              trust_remote_code=m.trust_remote_code)
    except (ValueError, KeyError, ImportError) as exc:
        raise SimulationError(f"transformers cannot build {hf_cfg.model_type!r} from its config: {exc}") from exc
    if q.load_in_8bit:
        raise SimulationError("8-bit loading (LLM.int8) is not simulated; the analytic estimate stands")
    if q.load_in_4bit:
        if config.lora.use_dora:
            raise SimulationError("DoRA on 4-bit weights is not simulated (it needs the dequantized weight)")
        _quantize_linears(model, _dtype_named(q.bnb_4bit_compute_dtype), q.bnb_4bit_use_double_quant)
        model.is_loaded_in_4bit = True
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.training.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False})
        notes.append("4-bit linears simulated by a stand-in with bitsandbytes' storage (bitsandbytes needs CUDA)")
    if config.lora.enabled:
        model = train_model._add_lora(model, config)
    if config.training.gradient_checkpointing:
        kwargs = {"use_reentrant": False}  # what the runner's training arguments pass
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.train()
    return model, hf_cfg, source, dtype


def _dtype_named(name: str):
    import torch

    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]


def _quantize_linears(model, compute_dtype, double_quant: bool) -> None:
    """Swap every nn.Linear except the output head for the 4-bit stand-in (what bitsandbytes quantizes)."""
    import torch.nn as nn

    stand_in = _linear4bit_class()
    head = model.get_output_embeddings()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear and child is not head:
                setattr(parent, name, stand_in(child, compute_dtype, double_quant))


# --------------------------------------------------------------------------------------------------
# The optimizer the Trainer would build
# --------------------------------------------------------------------------------------------------
def _optimizer(config, params, notes: list[str]):
    import torch

    from runner.estimate import optimizers

    t = config.training
    name = t.optim
    adam = dict(lr=t.learning_rate, betas=(t.adam_beta1, t.adam_beta2), eps=t.adam_epsilon,
                weight_decay=t.weight_decay)
    # On CUDA torch's optimizers default to their foreach implementation; on CPU tensors to the per-tensor
    # loop, whose temporaries differ, so foreach is asked for explicitly.
    if name in ("adamw_torch", "adamw_torch_xla", "adamw_torch_npu_fused", "stable_adamw"):
        return torch.optim.AdamW(params, foreach=True, **adam)
    if name == "adamw_torch_fused":
        return torch.optim.AdamW(params, fused=True, **adam)
    if name == "sgd":
        return torch.optim.SGD(params, lr=t.learning_rate, foreach=True)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=t.learning_rate, foreach=True)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=t.learning_rate, foreach=True)
    spec = optimizers.spec(name)
    notes.append(f"optim {name}: its library kernels cannot run on fake tensors; its state is allocated as it "
                 f"stores it ({spec.states:g} state(s) per parameter at "
                 f"{'the parameter dtype' if spec.state_bytes is None else f'{spec.state_bytes:.3g} B'})")
    return _StateOnly(params, spec)


class _StateOnly:
    """An optimizer stand-in that allocates the state a library optimizer stores and updates in place."""

    def __init__(self, params, spec) -> None:
        self.params = [p for p in params]
        self.spec = spec
        self.state: dict[Any, list] = {}

    def _alloc(self, p):
        import torch

        if self.spec.factored and p.dim() == 2:
            return [p.new_empty(p.shape[0], dtype=torch.float32), p.new_empty(p.shape[1], dtype=torch.float32)]
        if self.spec.state_bytes is None:
            return [torch.empty_like(p) for _ in range(int(self.spec.states))]
        if self.spec.state_bytes >= 4:
            return [p.new_empty(p.shape, dtype=torch.float32) for _ in range(int(self.spec.states))]
        if self.spec.state_bytes >= 1:  # 8-bit: one byte per value + an fp32 scale per 256-value block
            blocks = math.ceil(p.numel() / 256)
            return [t for _ in range(int(self.spec.states)) for t in
                    (p.new_empty(p.shape, dtype=torch.uint8), p.new_empty(blocks, dtype=torch.float32))]
        blocks = math.ceil(p.numel() / 128)  # 4-bit: two values per byte + an fp32 scale per 128
        return [t for _ in range(int(self.spec.states)) for t in
                (p.new_empty((p.numel() + 1) // 2, dtype=torch.uint8), p.new_empty(blocks, dtype=torch.float32))]

    def step(self) -> None:
        for p in self.params:
            if p.grad is not None and p not in self.state:
                self.state[p] = self._alloc(p)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None


# --------------------------------------------------------------------------------------------------
# One training step
# --------------------------------------------------------------------------------------------------
def simulate(config) -> dict[str, Any]:
    """Simulate one training step of `config`; returns peaks by phase and what each holds (bytes)."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    from runner.estimate import memory as analytic

    started, cpu_started = time.perf_counter(), time.process_time()
    notes: list[str] = []
    s = analytic.settings(config)
    world = max(1, config.launch.num_processes) * max(1, config.launch.num_machines)
    if world > 1:
        notes.append(f"{world} processes: one process is simulated; DDP buckets, sharding and NCCL buffers are "
                     "the analytic model's")
    _gpu_kernels()
    tracker = _tracker_class()()
    fake = FakeTensorMode(allow_non_fake_inputs=True)
    with fake, tracker:
        model, hf_cfg, source, dtype = _build(config, notes)
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            raise SimulationError("nothing trains: every parameter is frozen")
        optimizer = _optimizer(config, trainable, notes)
        # The optimizer state exists from the first step on: make it, as step 1 would.
        for p in trainable:
            p.grad = torch.zeros_like(p)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        weight_keys = {p.untyped_storage()._cdata: p.untyped_storage().nbytes() for p in model.parameters()}
        weights = sum(weight_keys.values())
        state = _optimizer_state_bytes(optimizer)

        def categorise(live: int) -> dict[str, int]:
            seen: set[int] = set()
            grads = 0
            for p in trainable:
                if p.grad is not None:
                    st = p.grad.untyped_storage()
                    if st._cdata not in seen:
                        seen.add(st._cdata)
                        grads += st.nbytes()
            return {"weights": weights, "gradients": grads, "optimizer state": state,
                    "activations & temporaries": live - weights - grads - state}

        tracker.categorise = categorise
        b, seq = config.training.per_device_train_batch_size, config.data.max_seq_length
        vocab = model.get_input_embeddings().weight.shape[0]
        if config.training.gradient_accumulation_steps > 1:
            for p in trainable:  # the earlier micro-batches' gradients are there while this one runs
                p.grad = torch.zeros_like(p)
        mixed = analytic.mixed_precision(s)
        autocast = (torch.autocast("cpu", dtype=torch.bfloat16 if mixed == "bf16" else torch.float16)
                    if mixed != "no" else None)

        tracker.enter("forward")
        ids = torch.zeros(b, seq, dtype=torch.long)
        inputs = {"input_ids": ids, "labels": torch.zeros(b, seq, dtype=torch.long)}
        if analytic.builds_attention_mask(s):
            inputs["attention_mask"] = torch.ones(b, seq, dtype=torch.long)
        if autocast is not None:
            from accelerate.utils.operations import convert_to_fp32

            with autocast:
                outputs = model(**inputs)
            outputs = convert_to_fp32(outputs)  # accelerate's wrapper upcasts 16-bit outputs
        else:
            outputs = model(**inputs)
        loss = outputs["loss"]
        del outputs, inputs, ids

        tracker.enter("backward")
        if config.training.gradient_accumulation_steps > 1:
            loss = loss / config.training.gradient_accumulation_steps
        loss.backward()
        del loss

        tracker.enter("optimizer step")
        if config.training.max_grad_norm and config.training.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(trainable, config.training.max_grad_norm, foreach=True)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    peaks = {phase: tracker.peaks[phase] for phase in PHASES}
    phase = max(peaks, key=lambda k: peaks[k])
    unseen = _unseen(s, world, peaks[phase])
    return {
        "peak_bytes": peaks[phase] + sum(unseen.values()), "tensor_peak_bytes": peaks[phase], "phase": phase,
        "phases": {k: v + sum(_unseen(s, world, v).values()) for k, v in peaks.items()}, "tensor_phases": peaks, "split": {k: tracker.split.get(k, {}) for k in PHASES}, "unseen": unseen,
        "params_total": sum(p.numel() * (2 if p.dtype == torch.uint8 else 1) for p in model.parameters()),
        "params_trainable": sum(p.numel() for p in trainable), "model_type": hf_cfg.model_type,
        "arch_source": source, "dtype": str(dtype).replace("torch.", ""), "vocab_size": vocab,
        "seconds": round(time.perf_counter() - started, 2),
        "cpu_seconds": round(time.process_time() - cpu_started, 2), "notes": notes,
    }


def _optimizer_state_bytes(optimizer) -> int:
    import torch
    from torch.utils._pytree import tree_flatten

    seen: set[int] = set()
    total = 0
    for value in optimizer.state.values():
        for t in tree_flatten(value)[0]:
            if isinstance(t, torch.Tensor) and t.untyped_storage()._cdata not in seen:
                seen.add(t.untyped_storage()._cdata)
                total += t.untyped_storage().nbytes()
    return total


def _unseen(s: dict[str, Any], world: int, tensor_bytes: int) -> dict[str, int]:
    """What a simulation cannot see, from the analytic model (labelled by its source there)."""
    from runner.estimate import memory as analytic

    out = {"CUDA context (analytic)": analytic.CUDA_CONTEXT,
           "allocator reserve and fragmentation (analytic)": int(tensor_bytes * analytic.ALLOCATOR_OVERHEAD),
           "cuBLAS workspaces (analytic)": analytic.WORKSPACE}
    if world > 1:
        out["NCCL buffers (analytic)"] = analytic.NCCL_BUFFERS
    return out


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------
def _load(args) -> Any:
    from runner import presets
    from runner.schema import Config

    if args.config_json:
        text = sys.stdin.read() if args.config_json == "-" else Path(args.config_json).read_text(encoding="utf-8")
        return Config.model_validate(json.loads(text))
    loaded = presets.load(args.preset, list(args.overrides))
    if not loaded.ok or loaded.config is None:
        raise SimulationError("; ".join(p.format() for p in (loaded.errors or loaded.problems)))
    return loaded.config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner.simulate", description=__doc__.splitlines()[0])
    parser.add_argument("preset", nargs="?", help="preset file or name")
    parser.add_argument("--config-json", metavar="FILE", help="a resolved config as JSON ('-': stdin)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    args = parser.parse_args(argv)
    if not args.preset and not args.config_json:
        parser.error("give a preset or --config-json")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a config only ever comes from disk
    try:
        result = simulate(_load(args))
    except SimulationError as exc:
        print(json.dumps({"error": str(exc)}) if args.json else f"error: {exc}", file=sys.stdout if args.json
              else sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        gib = 1024**3
        for phase in PHASES:
            print(f"{phase:<15} {result['phases'][phase] / gib:8.2f} GiB  (tensors {result['tensor_phases'][phase] / gib:.2f} GiB)")
        print(f"peak {result['peak_bytes'] / gib:.2f} GiB at the {result['phase']} ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
