"""Runner overhead and packing benchmark (CPU is fine; prints figures and ratios, asserts nothing).

1. Real tokens/s of `tunedeck run` (accelerate launch, events, callbacks, stop checks) against a
   plain hand-written transformers Trainer script on the same tiny model, data and settings,
   measured alternately in the same session; target ratio >= 0.97.
2. Real-token throughput with packing (padding-free) against padding to the longest example and
   to max_length.

    python benchmarks/runner_overhead.py [--steps 150] [--repeats 3]

Tokens/s on both sides = non-padding tokens trained / time from the start of the training loop to
its end (model loading and process start-up excluded, as they are one-off costs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BASELINE = textwrap.dedent('''
    import json, sys, time
    import torch
    from datasets import load_dataset
    from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer,
                              TrainerCallback, TrainingArguments)

    model_dir, data_file, out_dir, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)

    def encode(row):
        prompt = f"### Instruction:\\n{row['instruction']}\\n\\n### Input:\\n{row['input']}\\n\\n### Response:\\n"
        p = tok(prompt)["input_ids"]
        a = tok(row["output"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        return {"input_ids": p + a, "labels": [-100] * len(p) + a, "attention_mask": [1] * (len(p) + len(a))}

    ds = load_dataset("json", data_files=data_file, split="train")
    ds = ds.map(encode, remove_columns=ds.column_names)

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            self.t0, self.cpu0 = time.time(), time.process_time()
        def on_train_end(self, args, state, control, **kw):
            self.seconds, self.cpu = time.time() - self.t0, time.process_time() - self.cpu0

    clock = Clock()
    args = TrainingArguments(out_dir, per_device_train_batch_size=16, max_steps=steps, learning_rate=1e-3,
                             lr_scheduler_type="cosine", warmup_steps=0.05, weight_decay=0.01, logging_steps=10,
                             save_strategy="no", eval_strategy="no", report_to=[], disable_tqdm=True, use_cpu=True,
                             include_num_input_tokens_seen="non_padding", seed=42)
    trainer = Trainer(model=model, args=args, train_dataset=ds, processing_class=tok,
                      data_collator=DataCollatorForSeq2Seq(tok, padding="longest"), callbacks=[clock])
    trainer.train()
    print("RESULT " + json.dumps({"tokens": trainer.state.num_input_tokens_seen, "seconds": clock.seconds,
                                 "cpu": clock.cpu}))
''')


def env_for(cache: Path, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(TUNEDECK_CACHE_DIR=str(cache), TUNEDECK_CONFIG_DIR=str(home / "config"),
               TUNEDECK_STATE_DIR=str(home / "state"), TUNEDECK_RUNS_DIR=str(home / "runs"),
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    return env


def tunedeck_rate(env: dict[str, str], steps: int, *sets: str) -> tuple[float, int, float]:
    """(real tokens/s over the training loop, tokens, tokens per CPU-second) of one `tunedeck run demo`."""
    args = ["--set", f"training.max_steps={steps}", "--set", "training.eval_strategy='no'",
            "--set", "training.save_strategy='no'", "--set", "training.logging_steps=10",
            "--set", "generation.prompts=[]"]
    for s in sets:
        args += ["--set", s]
    out = subprocess.run([sys.executable, "-m", "runner.cli", "run", "demo", *args], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True)
    run_dir = Path(next(x for x in out.stdout.splitlines() if x.startswith("run directory: ")).split(": ", 1)[1])
    from runner.events import read_events

    events = read_events(run_dir / "events.jsonl")
    last_log = [e for e in events if e["type"] == "log"][-1]
    finished = events[-1]
    assert finished["type"] == "run_finished", finished
    # tokens_seen at the last log (= the last step) over the loop time up to then.
    tokens = last_log["tokens_seen"]
    return tokens / last_log["elapsed_s"], tokens, tokens / last_log["cpu_s"]


def baseline_rate(env: dict[str, str], steps: int, work: Path) -> tuple[float, int, float]:
    from runner.train_demo import demo_data_file, demo_model_dir

    os.environ["TUNEDECK_CACHE_DIR"] = env["TUNEDECK_CACHE_DIR"]
    script = work / "baseline.py"
    script.write_text(BASELINE)
    out = subprocess.run([sys.executable, str(script), str(demo_model_dir()), str(demo_data_file()),
                          str(work / "baseline-out"), str(steps)], env=env, capture_output=True, text=True, check=True)
    result = json.loads(next(x for x in out.stdout.splitlines() if x.startswith("RESULT ")).split(" ", 1)[1])
    return result["tokens"] / result["seconds"], result["tokens"], result["tokens"] / result["cpu"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tunedeck-bench-") as tmp:
        work = Path(tmp)
        env = env_for(work / "cache", work)
        os.environ["TUNEDECK_CACHE_DIR"] = env["TUNEDECK_CACHE_DIR"]
        from runner.train_demo import demo_model_dir

        demo_model_dir()  # build once, outside the timings

        print(f"== overhead: tunedeck run vs a plain Trainer script ({args.steps} steps, batch 16, demo data) ==")
        ours, plain = [], []
        for i in range(args.repeats):  # alternate, so drifting machine load hits both sides alike
            for label, measure, sink in (("plain Trainer", lambda: baseline_rate(env, args.steps, work), plain),
                                         ("tunedeck run ", lambda: tunedeck_rate(env, args.steps), ours)):
                rate, tokens, per_cpu = measure()
                sink.append((rate, per_cpu))
                print(f"  {label} #{i + 1}: {rate:8.0f} tok/s wall, {per_cpu:8.0f} tok/CPU-s ({tokens} real tokens)")
        print(f"  load average now: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (other work skews wall figures)")
        for what, index in (("wall tok/s", 0), ("tok per CPU-second", 1)):
            mine, theirs = [r[index] for r in ours], [r[index] for r in plain]
            best = max(mine) / max(theirs)
            median = statistics.median(mine) / statistics.median(theirs)
            print(f"  ratio tunedeck/plain, {what:18s}: best-of {best:.3f}, median {median:.3f} (target >= 0.97)")

        print(f"\n== packing vs padding (real tokens/s, {args.steps} steps, batch 16) ==")
        variants = {
            "packing (padding-free)": ("data.packing=true",),
            "padding to longest": ("data.padding='longest'",),
            "padding to max_length": ("data.padding='max_length'",),
        }
        rates = {name: [] for name in variants}
        for _ in range(max(1, args.repeats - 1)):
            for name, sets in variants.items():
                rates[name].append(tunedeck_rate(env, args.steps, *sets)[0])  # wall: packing changes the work
        medians = {name: statistics.median(r) for name, r in rates.items()}
        for name, value in medians.items():
            print(f"  {name:24s} {value:9.0f} real tok/s")
        packed = medians["packing (padding-free)"]
        print(f"  ratio packing / padding-to-longest:    {packed / medians['padding to longest']:.2f}")
        print(f"  ratio packing / padding-to-max_length: {packed / medians['padding to max_length']:.2f}")


if __name__ == "__main__":
    main()
