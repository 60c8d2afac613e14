"""Estimates per second: one estimate (the TUI recomputes it on every edit) and one with suggestions.

    python benchmarks/estimate_speed.py

Baseline measured in the same run: building the Config itself (pydantic validation), which every
edit pays anyway. Target: one estimate well under 1 ms.
"""

from __future__ import annotations

import time

from runner.estimate import estimate
from runner.schema import Config

CASES = {
    "qlora 8B": dict(model={"name_or_path": "meta-llama/Llama-3.1-8B"}, lora={"enabled": True},
                     quantization={"load_in_4bit": True}, training={"bf16": True, "gradient_checkpointing": True}),
    "full 0.5B": dict(model={"name_or_path": "Qwen/Qwen2.5-0.5B"}, training={"bf16": True}),
    "lora 70B fsdp x8": dict(model={"name_or_path": "meta-llama/Llama-3.1-70B"}, lora={"enabled": True},
                             launch={"num_processes": 8, "strategy": "fsdp"}),
}


def rate(fn, seconds: float = 1.0) -> float:
    fn()  # warm caches (architecture lookup, layout)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    print(f"{'case':<18} {'config/s':>10} {'estimate/s':>11} {'us/estimate':>12} {'+suggest/s':>11} {'ratio':>6}")
    for name, data in CASES.items():
        config = Config(**data)
        base = rate(lambda: Config(**data))
        plain = rate(lambda: estimate(config))
        with_budget = rate(lambda: estimate(config, budget_bytes=24 << 30, gpu_count=8))
        print(f"{name:<18} {base:>10,.0f} {plain:>11,.0f} {1e6 / plain:>12.1f} {with_budget:>11,.0f} "
              f"{plain / base:>6.2f}")
    print("ratio = estimates per second / Config constructions per second (baseline, same run)")


if __name__ == "__main__":
    main()
