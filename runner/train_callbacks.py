"""Trainer callbacks: events + a readable log line, sample generations, graceful stop on a signal."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from transformers import TrainerCallback

from runner.diagnose import NonFiniteLoss
from runner.events import EventWriter, sanitize
from runner.progress_lines import eval_line, log_line


def gpu_memory(device_index: int | None = None) -> dict[str, int]:
    """Allocator figures for this process's GPU plus NVML's device-wide used memory (bytes); {} on CPU."""
    import torch

    if not torch.cuda.is_available():
        return {}
    index = torch.cuda.current_device() if device_index is None else device_index
    out = {
        "gpu_mem_allocated": torch.cuda.memory_allocated(index),
        "gpu_mem_reserved": torch.cuda.memory_reserved(index),
        "gpu_mem_peak_allocated": torch.cuda.max_memory_allocated(index),
        "gpu_mem_peak_reserved": torch.cuda.max_memory_reserved(index),
    }
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        out["gpu_mem_nvml_used"] = int(pynvml.nvmlDeviceGetMemoryInfo(handle).used)
    except Exception:  # noqa: BLE001 - NVML is optional; allocator figures are enough
        pass
    return out


class EventCallback(TrainerCallback):
    """Turns the Trainer's logs, evaluations and saves into events (rank 0) and readable lines."""

    def __init__(self, events: EventWriter, config_digest: str, stop, world_size: int, config_toml: str = ""):
        self.events = events
        self.digest = config_digest
        self.config_toml = config_toml  # the config trained, saved with each checkpoint (resume compares it)
        self.stop = stop
        self.world_size = world_size
        self.t0 = time.time()
        self.cpu0 = time.process_time()
        self.start_step = 0
        self.start_tokens = 0
        self.last = (time.time(), 0, 0)  # (time, step, tokens) at the previous log

    # --- progress --------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        self.t0 = time.time()
        self.cpu0 = time.process_time()
        self.start_step = state.global_step
        self.start_tokens = state.num_input_tokens_seen
        self.last = (self.t0, state.global_step, state.num_input_tokens_seen)

    def on_step_end(self, args, state, control, **kwargs):
        if self._stop_everywhere(args):
            control.should_save = True  # checkpoint this step, then leave the loop
            control.should_training_stop = True
        return control

    def _stop_everywhere(self, args) -> bool:
        """All ranks must leave at the same step, or the others hang in their next all-reduce."""
        if self.world_size <= 1:
            return self.stop.requested
        import torch
        import torch.distributed as dist

        flag = torch.tensor([1.0 if self.stop.requested else 0.0], device=args.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs:
            return
        loss = float(logs["loss"])
        if not math.isfinite(loss):
            raise NonFiniteLoss(f"loss became {loss} at step {state.global_step}")
        if not state.is_world_process_zero:
            return
        now = time.time()
        step, tokens = state.global_step, state.num_input_tokens_seen
        last_time, last_step, last_tokens = self.last
        dt = max(now - last_time, 1e-9)
        self.last = (now, step, tokens)
        done = step - self.start_step
        elapsed = now - self.t0
        eta = (state.max_steps - step) * elapsed / done if done > 0 else None
        samples_per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * self.world_size
        fields = {
            "loss": loss,
            "learning_rate": sanitize(logs.get("learning_rate")),
            "grad_norm": sanitize(logs.get("grad_norm")),
            "epoch": sanitize(logs.get("epoch", state.epoch)),
            "total_steps": state.max_steps,
            "progress": step / state.max_steps if state.max_steps else None,
            "tokens_per_s": (tokens - last_tokens) / dt,
            "samples_per_s": (step - last_step) * samples_per_step / dt,
            "elapsed_s": elapsed,
            "cpu_s": time.process_time() - self.cpu0,
            "eta_s": eta,
            "tokens_seen": tokens - self.start_tokens,
            **gpu_memory(),
        }
        event = self.events.emit("log", step, **fields)
        print(log_line(event), flush=True)  # the line `tunedeck logs --events` prints for it

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not state.is_world_process_zero or not metrics:
            return
        eval_loss = sanitize(metrics.get("eval_loss"))
        perplexity = None
        if eval_loss is not None and eval_loss < 700:  # exp overflows a double beyond ~709
            perplexity = math.exp(eval_loss)
        extra = {k: sanitize(v) if isinstance(v, (int, float)) else v
                 for k, v in metrics.items() if k.startswith("eval_") and k != "eval_loss"}
        event = self.events.emit("eval", state.global_step, eval_loss=eval_loss, perplexity=perplexity,
                                 epoch=sanitize(state.epoch), **extra)
        print(eval_line(event), flush=True)

    def on_save(self, args, state, control, **kwargs):
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and checkpoint.is_dir():
            # Lets `tunedeck resume` tell whether the config changed since this checkpoint.
            (checkpoint / "tunedeck.json").write_text(json.dumps({"config_digest": self.digest}) + "\n")
            if self.config_toml:
                (checkpoint / "tunedeck-config.toml").write_text(self.config_toml, encoding="utf-8")
            self.events.emit("checkpoint", state.global_step, path=str(checkpoint), name=checkpoint.name)
            print(f"checkpoint saved: {checkpoint}", flush=True)


class SampleCallback(TrainerCallback):
    """Completes generation.prompts after each evaluation (rank 0 only; the others wait at the next step)."""

    def __init__(self, generate):
        self.generate = generate

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if state.is_world_process_zero:
            self.generate(model, state.global_step, "eval")
