"""The analytic memory estimate against a simulated training step of the exact model (no GPU needed).

    python benchmarks/memory_truth.py              # the whole matrix
    python benchmarks/memory_truth.py --rows 0,5   # some rows

Each row builds the model from its architecture alone (the estimator's built-in table: Llama 3.x and
Qwen2.5 shapes, the latter with tied embeddings and q/k/v biases) on fake tensors and runs one training
step with the row's settings (`runner.simulate`): full fine-tuning, LoRA or QLoRA (r 16 on every linear,
dropout 0.05), bf16 weights and autocast, SDPA attention, AdamW (foreach), clipping at 1.0, rows padded to
the longest. It prints, per row, the simulated peak of live tensor bytes, the analytic estimate of the same
bytes (without the CUDA context, allocator reserve and workspaces, which a simulation cannot see), their
ratio, and the seconds the simulation took; then the worst row and the time of one analytic estimate.
Target: every ratio within 0.93-1.07; under 10 s per simulation of an 8B model on 2 CPU cores; an analytic
estimate under 1 ms.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GiB = 1024**3
LLAMA_1B, LLAMA_8B = "meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.1-8B"
QWEN_05B, QWEN_15B = "Qwen/Qwen2.5-0.5B", "Qwen/Qwen2.5-1.5B"

# (model, mode, batch, seq, gradient checkpointing)
MATRIX = [
    (LLAMA_1B, "full", 1, 512, False), (LLAMA_1B, "full", 1, 2048, False), (LLAMA_1B, "full", 4, 2048, True),
    (LLAMA_1B, "lora", 4, 2048, False), (LLAMA_1B, "lora", 1, 512, True), (LLAMA_1B, "lora", 4, 512, False),
    (LLAMA_1B, "qlora", 4, 2048, True), (LLAMA_1B, "qlora", 1, 2048, False),
    (LLAMA_8B, "full", 1, 512, True), (LLAMA_8B, "lora", 1, 2048, True), (LLAMA_8B, "lora", 4, 512, False),
    (LLAMA_8B, "qlora", 1, 512, False), (LLAMA_8B, "qlora", 4, 2048, True), (LLAMA_8B, "qlora", 4, 2048, False),
    (QWEN_15B, "full", 1, 512, False), (QWEN_15B, "full", 4, 2048, True), (QWEN_15B, "lora", 4, 2048, False),
    (QWEN_15B, "lora", 1, 512, True), (QWEN_15B, "qlora", 1, 2048, False), (QWEN_15B, "qlora", 4, 512, True),
    (QWEN_05B, "full", 4, 512, False), (QWEN_05B, "full", 1, 2048, True), (QWEN_05B, "lora", 1, 2048, False),
    (QWEN_05B, "qlora", 4, 2048, True),
]
TOLERANCE = 0.07


def row_config(row):
    from runner.schema import Config

    model, mode, batch, seq, ckpt = row
    return Config(
        model={"name_or_path": model, "dtype": "bfloat16", "attn_implementation": "sdpa"},
        quantization={"load_in_4bit": mode == "qlora", "bnb_4bit_compute_dtype": "bfloat16",
                      "bnb_4bit_use_double_quant": True},
        lora={"enabled": mode != "full", "r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear"},
        data={"max_seq_length": seq},
        training={"per_device_train_batch_size": batch, "gradient_checkpointing": ckpt, "bf16": True,
                  "optim": "adamw_torch"},
    )


def analytic_tensor_bytes(config) -> tuple[int, str]:
    from runner.estimate import estimate
    from runner.estimate.architecture import resolve
    from runner.estimate.memory import breakdown, settings
    from runner.estimate import _layout

    arch = resolve(config)
    result = breakdown(arch, _layout(arch), settings(config))
    phase = max(result.tensors, key=lambda k: result.tensors[k])
    estimate(config)  # the public path works too
    return result.tensors[phase], phase


def analytic_seconds(config, n: int = 2000) -> float:
    from runner.estimate import estimate

    estimate(config)
    start = time.perf_counter()
    for _ in range(n):
        estimate(config)
    return (time.perf_counter() - start) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", help="comma-separated row numbers (default: all)")
    args = parser.parse_args()
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from runner.simulate import simulate

    rows = [int(r) for r in args.rows.split(",")] if args.rows else range(len(MATRIX))
    print(f"{'#':>2} {'model':<14} {'mode':<5} {'b':>1} {'seq':>4} {'gc':<3} {'simulated':>9} {'analytic':>9} "
          f"{'ratio':>6} {'sim phase':<14} {'wall s':>6} {'cpu s':>6}")
    worst = None
    sim_times = {}
    for i in rows:
        row = MATRIX[i]
        config = row_config(row)
        result = simulate(config)
        gc.collect()  # the fake model and its graph go before the next row
        sim = result["tensor_peak_bytes"]
        est, _ = analytic_tensor_bytes(config)
        ratio = est / sim
        model, mode, batch, seq, ckpt = row
        mark = "" if abs(ratio - 1) <= TOLERANCE else "  OUT"
        print(f"{i:>2} {model.split('/')[-1]:<14} {mode:<5} {batch:>1} {seq:>4} {'on' if ckpt else 'off':<3} "
              f"{sim / GiB:>8.2f}G {est / GiB:>8.2f}G {ratio:>6.3f} {result['phase']:<14} {result['seconds']:>6.1f} {result['cpu_seconds']:>6.1f}{mark}",
              flush=True)
        sim_times.setdefault(model, []).append((result["seconds"], result["cpu_seconds"]))
        if worst is None or abs(ratio - 1) > abs(worst[1] - 1):
            worst = (i, ratio)
    if worst is not None:
        print(f"worst row: #{worst[0]} ratio {worst[1]:.3f} (target {1 - TOLERANCE:.2f}-{1 + TOLERANCE:.2f})")
    for model, times in sim_times.items():
        wall, cpu = sorted(w for w, _ in times), sorted(c for _, c in times)
        print(f"simulation of {model}: wall median {wall[len(wall) // 2]:.1f} s (max {wall[-1]:.1f}), "
              f"CPU median {cpu[len(cpu) // 2]:.1f} s (max {cpu[-1]:.1f}) over {len(times)} rows")
    # what a user waits for: a fresh process (imports included) on the 8B QLoRA row
    from runner.simulate import run_subprocess

    start = time.perf_counter()
    run_subprocess(row_config(MATRIX[12]).model_dump(mode="json"))
    print(f"one `estimate --simulate` subprocess, 8B QLoRA row, imports included: {time.perf_counter() - start:.1f} s wall")
    config = row_config(MATRIX[0])
    print(f"analytic estimate: {analytic_seconds(config) * 1e6:.0f} us per estimate (target < 1000 us)")
    print(f"CPU cores: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f} (the machine may be shared)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
