"""First-token latency of `tunedeck try` / the Try screen: from sending a prompt to the first token.

Target: under 2 s on CPU with the demo once the model is loaded. Measured through the real playground
subprocess (runner.playground via runner.playground_client, as the TUI's worker talks to it), against
a baseline measured in the same run: the same model generating its first token in this process, with
no subprocess and no JSON in between.

    python benchmarks/try_latency.py [RUN] [--repeats 10]

Without RUN it trains the demo preset once (`tunedeck run demo`) into a temporary runs directory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPTS = ["Repeat the word three times. ### Input: lamp", "Write the plural of the word. ### Input: hill",
           "What is the capital of this country? ### Input: Peru", "Count up from the number. ### Input: 7"]


def train_demo(home: Path) -> Path:
    env = dict(os.environ, TUNEDECK_RUNS_DIR=str(home / "runs"), TUNEDECK_STATE_DIR=str(home / "state"),
               PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "runner.cli", "run", "demo"], env=env, cwd=ROOT,
                            capture_output=True, text=True, check=True)
    line = next(x for x in result.stdout.splitlines() if x.startswith("run directory: "))
    return Path(line.split(": ", 1)[1])


def through_playground(run: Path, repeats: int) -> tuple[float, list[float], list[float]]:
    """(load seconds, client-side first-token latencies, the playground's own first-token times)."""
    from runner.playground_client import PlaygroundClient

    started = time.monotonic()
    client = PlaygroundClient(run, env=dict(os.environ, PYTHONPATH=str(ROOT))).start()
    try:
        while (reply := client.next_reply(timeout=600))["type"] != "ready":
            if reply["type"] in ("error", "exit"):
                raise SystemExit(f"playground failed: {reply}")
        load = time.monotonic() - started
        seen, inside = [], []
        for k in range(repeats):
            sent = time.monotonic()
            rid = client.generate(PROMPTS[k % len(PROMPTS)], generation={"do_sample": False})
            first = None
            while True:
                reply = client.next_reply(timeout=600)
                if reply.get("id") != rid:
                    continue
                if reply["type"] == "token" and first is None:
                    first = time.monotonic() - sent
                if reply["type"] == "done":
                    inside.append(reply["first_token_s"])
                    break
            seen.append(first)
        return load, seen, inside
    finally:
        client.close()


def in_process(run: Path, repeats: int) -> list[float]:
    """Baseline: the same model, prompt rendering and first token, in this process."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from runner import presets
    from runner.playground import encode_prompt

    config = presets.load(run / "config.toml").config
    tokenizer = AutoTokenizer.from_pretrained(run / "final")
    model = AutoModelForCausalLM.from_pretrained(run / "final").eval()
    times = []
    with torch.no_grad():
        model.generate(**encode_prompt(config, tokenizer, PROMPTS[0])[1], max_new_tokens=1, do_sample=False)
        for k in range(repeats):
            t0 = time.monotonic()
            _, inputs = encode_prompt(config, tokenizer, PROMPTS[k % len(PROMPTS)])
            model.generate(**inputs, max_new_tokens=1, do_sample=False, pad_token_id=tokenizer.pad_token_id)
            times.append(time.monotonic() - t0)
    return times


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(values) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, max {max(values) * 1000:.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", type=Path, help="a run directory (default: train the demo)")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run.resolve() if args.run else train_demo(Path(tmp))
        load, seen, inside = through_playground(run, args.repeats)
        base = in_process(run, args.repeats)
    print(f"run: {run}")
    print(f"model loaded (subprocess start, imports, weights, warm-up): {load:.2f} s")
    print(f"first token, prompt sent -> first token line received: {ms(seen)}")
    print(f"first token inside the playground (generate call):       {ms(inside)}")
    print(f"baseline, same model in this process (1 token):          {ms(base)}")
    print(f"ratio playground / in-process (medians): {statistics.median(seen) / statistics.median(base):.2f}x")
    verdict = "meets" if max(seen) < 2.0 else "MISSES"
    print(f"target: first token under 2 s once loaded: {verdict} (worst {max(seen):.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
