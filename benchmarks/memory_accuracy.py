"""Estimate vs measured peak GPU memory for real architectures (random weights, no download).

    python benchmarks/memory_accuracy.py            # the whole matrix, one subprocess per row
    python benchmarks/memory_accuracy.py --rows 0,4 # some rows

Each row builds a randomly initialised model from the built-in architecture table (Qwen2.5,
Llama 3.x shapes), trains a few steps with the transformers Trainer (full, LoRA or QLoRA, bf16),
and records torch's peak allocated/reserved memory and the NVML-used peak of the GPU minus what was
in use before the row started. The estimate is compared with the NVML figure, which is what has to
fit on the card. Target: within 10% (or 1 GiB for runs under 10 GiB), never under by more than 5%.
Needs a CUDA GPU (and bitsandbytes for the 8-bit/paged/QLoRA rows); elsewhere it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GiB = 1024**3
STEPS = 4  # optimizer steps per row: the state exists from step 1, so the peak is reached by step 2

# One row per line: model, mode (full / lora / qlora), batch, seq, gradient checkpointing (on / off), optim.
ROWS = """
Qwen/Qwen2.5-0.5B        full   4   512  off  adamw_torch
Qwen/Qwen2.5-0.5B        full   8  1024  on   adamw_torch
Qwen/Qwen2.5-1.5B        full   2  2048  on   adamw_bnb_8bit
meta-llama/Llama-3.2-1B  full   4  1024  off  paged_adamw_8bit
meta-llama/Llama-3.2-1B  lora   8  1024  off  adamw_torch
meta-llama/Llama-3.2-3B  lora   4  2048  on   adamw_torch
meta-llama/Llama-3.2-3B  lora   1  4096  off  paged_adamw_32bit
meta-llama/Llama-3.1-8B  lora   2  2048  on   adamw_torch
meta-llama/Llama-3.1-8B  lora   1   512  off  paged_adamw_8bit
Qwen/Qwen2.5-1.5B        qlora  8  1024  on   paged_adamw_8bit
meta-llama/Llama-3.2-3B  qlora  4  2048  off  adamw_torch
meta-llama/Llama-3.1-8B  qlora  2  4096  on   paged_adamw_8bit
Qwen/Qwen2.5-1.5B        lora   1  8192  on   adamw_torch
"""


def parse_rows(text: str) -> list[tuple[str, str, int, int, bool, str]]:
    """The table above as (model, mode, batch, seq, checkpointing, optim) tuples, in order."""
    rows = []
    for line in text.strip().splitlines():
        model, mode, batch, seq, gc, optim = line.split()
        rows.append((model, mode, int(batch), int(seq), gc == "on", optim))
    return rows


MATRIX = parse_rows(ROWS)


def tunedeck_config(row):
    from runner.schema import Config

    model, mode, batch, seq, gc, optim = row
    return Config(
        model={"name_or_path": model, "dtype": "bfloat16", "attn_implementation": "sdpa"},
        quantization={"load_in_4bit": mode == "qlora", "bnb_4bit_compute_dtype": "bfloat16",
                      "bnb_4bit_use_double_quant": True},
        lora={"enabled": mode != "full", "r": 16, "lora_alpha": 32, "lora_dropout": 0.05,
              "target_modules": "all-linear"},
        data={"max_seq_length": seq, "padding": "max_length"},
        training={"per_device_train_batch_size": batch, "gradient_checkpointing": gc, "bf16": True, "optim": optim},
    )


def measure(row) -> dict:
    """Train one row in this process and return its measured peaks (bytes)."""
    import pynvml
    import torch
    import transformers
    from runner.estimate.known_models import lookup

    model_id, mode, batch, seq, gc, optim = row
    pynvml.nvmlInit()
    index = int((os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0])
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    before = pynvml.nvmlDeviceGetMemoryInfo(handle).used  # other processes' memory, not ours
    peak_used = [before]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak_used[0] = max(peak_used[0], pynvml.nvmlDeviceGetMemoryInfo(handle).used)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    arch = {k: v for k, v in lookup(model_id).items() if k != "dtype"}
    hf_config = transformers.AutoConfig.for_model(**arch)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        if mode == "qlora":
            import peft

            cpu_model = transformers.AutoModelForCausalLM.from_config(hf_config, dtype=torch.bfloat16)
            cpu_model.save_pretrained(tmp)  # random weights, so from_pretrained can quantize them
            del cpu_model
            quant = transformers.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                    bnb_4bit_compute_dtype=torch.bfloat16,
                                                    bnb_4bit_use_double_quant=True)
            model = transformers.AutoModelForCausalLM.from_pretrained(
                tmp, quantization_config=quant, dtype=torch.bfloat16, device_map={"": 0}, attn_implementation="sdpa")
            model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=gc)
        else:
            model = transformers.AutoModelForCausalLM.from_config(
                hf_config, dtype=torch.bfloat16, attn_implementation="sdpa").to("cuda")
        if mode != "full":
            import peft

            model = peft.get_peft_model(model, peft.LoraConfig(
                r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"))
        g = torch.Generator().manual_seed(0)
        data = [{"input_ids": (ids := torch.randint(0, hf_config.vocab_size, (seq,), generator=g)),
                 "labels": ids, "attention_mask": torch.ones(seq, dtype=torch.long)} for _ in range(batch * STEPS)]
        args = transformers.TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=batch, max_steps=STEPS, bf16=True, learning_rate=1e-4,
            gradient_checkpointing=gc, optim=optim, report_to=[], save_strategy="no", logging_steps=1,
            dataloader_num_workers=0, remove_unused_columns=False)
        torch.cuda.reset_peak_memory_stats()
        transformers.Trainer(model=model, args=args, train_dataset=data).train()
        torch.cuda.synchronize()
    stop.set()
    sampler.join()
    return {"peak_allocated": torch.cuda.max_memory_allocated(), "peak_reserved": torch.cuda.max_memory_reserved(),
            "nvml_used": peak_used[0] - before}


def judge(estimate: int, measured: int) -> tuple[float, bool]:
    error = (estimate - measured) / measured
    close = abs(error) <= 0.10 or (measured < 10 * GiB and abs(estimate - measured) <= GiB)
    return error, close and error >= -0.05


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", help="comma-separated row numbers (default: all)")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print("RESULT " + json.dumps(measure(MATRIX[args.worker])))
        return 0
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    if not cuda:
        print("memory_accuracy: needs a CUDA GPU (none found); nothing measured.")
        return 0
    from runner.estimate import estimate

    rows = [int(r) for r in args.rows.split(",")] if args.rows else range(len(MATRIX))
    print(f"{'#':>2} {'model':<24} {'mode':<5} {'b':>2} {'seq':>5} {'gc':<3} {'optim':<18} "
          f"{'estimate':>9} {'nvml':>9} {'reserved':>9} {'alloc':>9} {'error':>7} ok")
    failures = 0
    for i in rows:
        row = MATRIX[i]
        est = estimate(tunedeck_config(row)).peak_bytes
        proc = subprocess.run([sys.executable, __file__, "--worker", str(i)], capture_output=True, text=True)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        model, mode, batch, seq, gc, optim = row
        head = f"{i:>2} {model.split('/')[-1]:<24} {mode:<5} {batch:>2} {seq:>5} {'on' if gc else 'off':<3} {optim:<18}"
        if line is None:
            failures += 1
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"{head} {est / GiB:>8.2f}G  failed: {tail[:120]}")
            continue
        got = json.loads(line[len("RESULT "):])
        error, ok = judge(est, got["nvml_used"])
        failures += not ok
        print(f"{head} {est / GiB:>8.2f}G {got['nvml_used'] / GiB:>8.2f}G {got['peak_reserved'] / GiB:>8.2f}G "
              f"{got['peak_allocated'] / GiB:>8.2f}G {100 * error:>+6.1f}% {'yes' if ok else 'NO'}")
    print(f"{len(rows) - failures}/{len(rows)} rows within target (10%, or 1 GiB under 10 GiB; never >5% under)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
