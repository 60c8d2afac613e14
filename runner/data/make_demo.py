"""Generate runner/data/demo.jsonl, the dataset behind `data.path = "tunedeck:demo"`.

Small synthetic tasks a ~1M-parameter model learns within a couple of hundred steps, so the
loss visibly falls: facts to memorise (capitals, opposites), and rules to pick up (counting,
repeating, plurals). Every row carries all three formats (text, instruction, chat), so the
demo works with any `data.format`. Deterministic: re-running gives the same file.

    python -m runner.data.make_demo
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CAPITALS = {
    "France": "Paris", "Italy": "Rome", "Spain": "Madrid", "Germany": "Berlin", "Japan": "Tokyo",
    "Egypt": "Cairo", "Peru": "Lima", "Kenya": "Nairobi", "Norway": "Oslo", "Greece": "Athens",
    "Cuba": "Havana", "Chile": "Santiago", "Poland": "Warsaw", "Austria": "Vienna", "Ireland": "Dublin",
    "Portugal": "Lisbon", "Russia": "Moscow", "China": "Beijing", "India": "Delhi", "Canada": "Ottawa",
}
OPPOSITES = {
    "hot": "cold", "big": "small", "up": "down", "fast": "slow", "old": "new", "light": "dark",
    "happy": "sad", "open": "closed", "early": "late", "full": "empty", "hard": "soft", "high": "low",
    "rich": "poor", "wet": "dry", "strong": "weak", "long": "short", "near": "far", "first": "last",
}
NOUNS = ["cat", "dog", "tree", "book", "car", "bird", "house", "river", "apple", "star", "cloud",
         "stone", "ship", "lamp", "door", "hill", "road", "song", "cup", "coin"]


def _capital(rng: random.Random) -> tuple[str, str, str]:
    country = rng.choice(sorted(CAPITALS))
    return "What is the capital of this country?", country, CAPITALS[country]


def _opposite(rng: random.Random) -> tuple[str, str, str]:
    word = rng.choice(sorted(OPPOSITES))
    return "Give the opposite of the word.", word, OPPOSITES[word]


def _count(rng: random.Random) -> tuple[str, str, str]:
    start = rng.randint(1, 20)
    length = rng.randint(3, 6)
    return "Count up from the number.", str(start), " ".join(str(start + k) for k in range(length))


def _repeat(rng: random.Random) -> tuple[str, str, str]:
    noun = rng.choice(NOUNS)
    return "Repeat the word three times.", noun, f"{noun} {noun} {noun}"


def _plural(rng: random.Random) -> tuple[str, str, str]:
    noun = rng.choice(NOUNS)
    return "Write the plural of the word.", noun, noun + "s"


TASKS = (_capital, _opposite, _count, _repeat, _plural)


def make_rows(n: int = 1600, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        instruction, given, answer = rng.choice(TASKS)(rng)
        rows.append({
            "text": f"{instruction} {given} -> {answer}",
            "instruction": instruction,
            "input": given,
            "output": answer,
            "messages": [
                {"role": "user", "content": f"{instruction} {given}"},
                {"role": "assistant", "content": answer},
            ],
        })
    return rows


def main() -> None:
    out = Path(__file__).with_name("demo.jsonl")
    out.write_text("".join(json.dumps(r) + "\n" for r in make_rows()), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
