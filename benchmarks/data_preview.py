"""`tunedeck data` on a 10,000-row chat dataset with a real BPE tokenizer, pinned to 2 CPU cores.

Builds everything locally (nothing is downloaded): a byte-level BPE tokenizer with a 16k vocabulary
trained with the `tokenizers` library on the generated text and saved as a Hugging Face tokenizer
directory (with a chat template), a JSON Lines file of 10,000 multi-turn chat rows of varied length,
and a preset pointing at both. Then it times, as a user would meet it, the whole preview command
(`python -m runner.data_preview PRESET --json`, which is what `tunedeck data` and the TUI's Data
screen run: interpreter start, imports, loading, rendering through the chat template, tokenizing,
masking and statistics). Target: under 5 s.

Baseline, measured in the same run: the same interpreter doing only the imports the preview needs
(transformers' tokenizer and datasets) and tokenizing the same 10,000 rendered texts in one batch;
the ratio shows what the preview adds over the bare minimum.

    python benchmarks/data_preview.py [--rows 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOPICS = ["the weather", "a recipe", "python lists", "the moon", "tax forms", "a bicycle", "jazz", "rust traits",
          "gardening", "sleep", "the roman empire", "a job interview", "sql joins", "coffee", "chess openings"]
WORDS = ("about into over under with from what when where which while would could should there their these "
         "those other first after before again always never often small large quick slow light heavy early late "
         "answer question explain example simple detail reason result system value number string memory").split()


def make_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        turns = []
        for _ in range(rng.choice((1, 1, 2, 3))):
            topic = rng.choice(TOPICS)
            question = f"Tell me about {topic}. " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 30)))
            answer = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 120))) + "."
            turns += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        rows.append({"messages": turns})
    return rows


def build_tokenizer(texts: list[str], out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=16000, special_tokens=["<pad>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    template = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
                "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
        "model_max_length": 4096, "chat_template": template}))


BASELINE = """
import json, sys, time
from transformers import AutoTokenizer
import datasets
tok = AutoTokenizer.from_pretrained(sys.argv[1])
rows = [json.loads(line) for line in open(sys.argv[2])]
texts = [tok.apply_chat_template(r["messages"], tokenize=False) for r in rows]
ids = tok(texts, add_special_tokens=False)["input_ids"]
print(sum(map(len, ids)))
"""


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{argv[:3]} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return seconds, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    cores = sorted(os.sched_getaffinity(0))[:2]
    with tempfile.TemporaryDirectory(prefix="tunedeck-bench-data-") as tmp:
        tmpdir = Path(tmp)
        rows = make_rows(args.rows)
        data = tmpdir / "chat.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        build_tokenizer([m["content"] for r in rows for m in r["messages"]], tmpdir / "tokenizer")
        preset = tmpdir / "bench.toml"
        preset.write_text(f'''description = "data preview benchmark"
[model]
name_or_path = "{tmpdir / 'tokenizer'}"
[data]
path = "{data}"
format = "chat"
max_seq_length = 512
eval_split = 0.05
[training]
eval_strategy = "steps"
''')
        env = dict(os.environ)
        env.update(PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                   HF_DATASETS_CACHE=str(tmpdir / "hf-datasets"))
        pin = ["taskset", "-c", ",".join(map(str, cores))] if _has_taskset() else []
        preview_argv = [*pin, sys.executable, "-m", "runner.data_preview", str(preset), "--json", "--n", "5"]
        baseline_argv = [*pin, sys.executable, "-c", BASELINE, str(tmpdir / "tokenizer"), str(data)]
        timed(preview_argv, env)  # warm the OS file cache and the datasets cache of the JSONL file
        previews, baselines, inner = [], [], []
        for _ in range(args.runs):
            seconds, out = timed(preview_argv, env)
            result = json.loads(out)
            previews.append(seconds)
            inner.append(result["seconds"])
            baselines.append(timed(baseline_argv, env)[0])
        tot, ln = result["totals"], result["lengths"]
        print(f"dataset: {tot['read']:,} chat rows, {tot['tokens']:,} tokens ({tot['trained_tokens']:,} trained), "
              f"lengths p50 {ln['p50']} / p99 {ln['p99']} / max {ln['max']}, {ln['over_max']} over max_seq_length 512")
        print(f"CPU cores: {len(cores)} ({'pinned with taskset' if pin else 'not pinned: taskset missing'})")
        print(f"preview (whole command, {args.runs} runs): median {statistics.median(previews):.2f} s "
              f"(min {min(previews):.2f}, max {max(previews):.2f}); target < 5 s: "
              f"{'met' if statistics.median(previews) < 5 else 'NOT met'}")
        print(f"  of which loading + rendering + tokenizing + statistics: median {statistics.median(inner):.2f} s")
        print(f"baseline (imports + one batch tokenization of the same texts): median {statistics.median(baselines):.2f} s")
        print(f"ratio preview / baseline: {statistics.median(previews) / statistics.median(baselines):.2f}x")


def _has_taskset() -> bool:
    from shutil import which

    return which("taskset") is not None


if __name__ == "__main__":
    main()
