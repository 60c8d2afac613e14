"""What the estimator suggests, and in which order, with an estimator whose figures are known: each
change saves a fixed number of bytes, so every candidate's peak, verdict and rank can be worked out by
hand. (tests/test_estimate_memory.py checks that real suggestions really fit with the real estimator.)"""

from __future__ import annotations

from typing import Any

import pytest

from runner.estimate.memory import settings
from runner.estimate.suggest import _memory_candidates, needs_cuda, suggest
from runner.schema import Config

CHECKPOINTING = "Turn on gradient checkpointing (steps ~20-30% slower)"
SDPA = "Use fused attention (sdpa) instead of eager"
LORA = "Train LoRA adapters (all linear layers) instead of every weight"
QLORA = "QLoRA: LoRA adapters on a 4-bit base model"
FOUR_BIT = {"quantization.load_in_4bit": True, "quantization.load_in_8bit": False,
            "quantization.bnb_4bit_quant_type": "nf4", "quantization.bnb_4bit_use_double_quant": True}


def _settings(**sections: dict[str, Any]) -> dict[str, Any]:
    return settings(Config(model={"name_or_path": "org/model", **sections.pop("model", {})}, **sections))


def full_fine_tune(**extra: Any) -> dict[str, Any]:
    s = _settings(model={"dtype": "float32", "attn_implementation": "eager"},
                  training={"bf16": False, "fp16": False, "optim": "adamw_torch", "per_device_train_batch_size": 6,
                            "gradient_accumulation_steps": 2},
                  data={"max_seq_length": 1024}, launch={"num_processes": 2, "strategy": "ddp"})
    return {**s, **extra}


def by_tokens(s: dict[str, Any]) -> int:
    """Peak = batch x sequence: easy to follow for the batch and sequence searches."""
    return int(s["training.per_device_train_batch_size"]) * int(s["data.max_seq_length"])


def test_every_memory_candidate_of_a_replicated_fp32_full_fine_tune():
    # budget 2400, so a candidate "fits" at 2160 or less: batch 6 -> 2 (2 x 1024), the sequence 1024 -> 256 (6 x 256)
    got = _memory_candidates(full_fine_tune(), 2400, by_tokens, None)
    assert got == [
        (0, SDPA, {"model.attn_implementation": "sdpa"}),
        (1, "Batch per GPU 6 -> 2 with gradient accumulation 2 -> 6 (same effective batch)",
         {"training.per_device_train_batch_size": 2, "training.gradient_accumulation_steps": 6}),
        (2, CHECKPOINTING, {"training.gradient_checkpointing": True}),
        (2, "Train in bf16 mixed precision with bfloat16 weights", {"training.bf16": True, "model.dtype": "bfloat16"}),
        (3, "Use the 8-bit optimizer adamw_bnb_8bit instead of adamw_torch", {"training.optim": "adamw_bnb_8bit"}),
        (4, "Shard the model across the 2 processes with FSDP instead of replicating it", {"launch.strategy": "fsdp"}),
        (6, "Shorten max_seq_length 1024 -> 256 (longer examples get cut)", {"data.max_seq_length": 256}),
        (7, LORA, {"lora.enabled": True, "lora.target_modules": "all-linear"}),
        (8, QLORA, {"lora.enabled": True, "lora.target_modules": "all-linear", **FOUR_BIT}),
    ]


def test_batch_and_sequence_fall_back_to_the_smallest_when_nothing_fits():
    got = dict((title.split(" ")[0] + title.split(" ")[1], changes)
               for _, title, changes in _memory_candidates(full_fine_tune(), 10, by_tokens, None))
    assert got["Batchper"] == {"training.per_device_train_batch_size": 1, "training.gradient_accumulation_steps": 12}
    assert got["Shortenmax_seq_length"] == {"data.max_seq_length": 128}  # never below 128 tokens


def test_more_gpus_than_processes_suggest_sharding_over_them():
    got = _memory_candidates(full_fine_tune(), 2400, by_tokens, 8)
    assert (4, "Shard across 8 GPUs with FSDP", {"launch.num_processes": 8, "launch.strategy": "fsdp"}) in got
    assert not any("replicating" in title for _, title, _ in got)
    one = _memory_candidates(full_fine_tune(**{"launch.num_processes": 1, "launch.strategy": "none"}), 2400,
                             by_tokens, 1)
    assert not any("FSDP" in title for _, title, _ in one)  # one GPU, one process: nothing to shard over
    fsdp = _memory_candidates(full_fine_tune(**{"launch.strategy": "fsdp"}), 2400, by_tokens, 2)
    assert not any("FSDP" in title for _, title, _ in fsdp)  # already sharded over every GPU


def test_lora_and_kbit_runs_get_their_own_candidates():
    lora = _settings(model={"dtype": "bfloat16"}, lora={"enabled": True},
                     training={"bf16": True, "optim": "adamw_torch", "per_device_train_batch_size": 1,
                               "gradient_checkpointing": True},
                     data={"max_seq_length": 128}, launch={"num_processes": 2, "strategy": "ddp"})
    got = _memory_candidates(lora, 1000, by_tokens, 4)
    assert got == [
        (3, "Use the 8-bit optimizer paged_adamw_8bit instead of adamw_torch", {"training.optim": "paged_adamw_8bit"}),
        (5, "Load the base model in 4-bit NF4 (QLoRA)", FOUR_BIT),
    ]
    qlora = {**lora, "quantization.load_in_4bit": True, "training.optim": "paged_adamw_8bit"}
    assert _memory_candidates(qlora, 1000, by_tokens, 4) == []
    # an fp32 k-bit run: bf16 training, but the dtype stays (it only sets what the non-quantized parts load as)
    kbit32 = {**qlora, "model.dtype": "float32", "training.bf16": False, "training.fp16": False}
    assert _memory_candidates(kbit32, 1000, by_tokens, 4) == [(2, "Train in bf16 mixed precision", {"training.bf16": True})]
    fp16 = {**kbit32, "training.fp16": True}
    assert _memory_candidates(fp16, 1000, by_tokens, 4) == []
    eight = {**kbit32, "quantization.load_in_4bit": False, "quantization.load_in_8bit": True}
    assert _memory_candidates(eight, 1000, by_tokens, 4) == [(2, "Train in bf16 mixed precision", {"training.bf16": True})]


def saving(savings: dict[str, int], base: int = 1000, impossible: tuple[str, ...] = ()):
    """An estimator where each change saves a fixed amount: key=value -> bytes saved."""
    start = full_fine_tune(**{"training.per_device_train_batch_size": 2})

    def run(s: dict[str, Any]) -> int:
        peak = base
        for key, value in s.items():
            if value != start[key]:
                if key in impossible:
                    raise ValueError(f"{key} cannot change here")
                peak -= savings.get(key, 0)
        return peak

    return start, run


def titles(found) -> list[str]:
    return [s.title for s in found]


BATCH = "Batch per GPU 2 -> 1 with gradient accumulation 2 -> 4 (same effective batch)"


def test_to_fit_ranks_fitting_changes_by_cost_then_tight_then_the_rest():
    # budget 800: "fits" at 720 or less, "tight" up to 800
    s, run = saving({"model.attn_implementation": 100, "training.per_device_train_batch_size": 250,
                     "training.gradient_checkpointing": 300, "training.bf16": 50, "training.optim": 20,
                     "lora.enabled": 600, "quantization.load_in_4bit": 50, "data.max_seq_length": 79})
    found = suggest(s, 1000, 800, run)
    assert [(t, sug.peak_bytes, sug.fits) for t, sug in zip(titles(found), found)] == [
        (CHECKPOINTING, 700, True),  # fits, cost 2
        (LORA, 400, True),  # fits, cost 7
        (QLORA, 350, True),  # fits, cost 8
        (BATCH, 750, True),  # tight
        (SDPA, 900, False),  # the rest, by what they save
        ("Shorten max_seq_length 1024 -> 128 (longer examples get cut)", 921, False),
        ("Train in bf16 mixed precision with bfloat16 weights", 950, False),
        ("Use the 8-bit optimizer adamw_bnb_8bit instead of adamw_torch", 980, False),
    ]
    assert all(sug.kind == "memory" for sug in found)
    assert found[0].changes == {"training.gradient_checkpointing": True}


def test_changes_that_save_nothing_or_cannot_apply_are_dropped():
    s, run = saving({"training.gradient_checkpointing": 300, "lora.enabled": 600},
                    impossible=("quantization.load_in_4bit",))
    found = suggest(s, 1000, 800, run)
    assert titles(found) == [CHECKPOINTING, LORA]  # no QLoRA (impossible), no zero savers


def test_combination_when_no_single_change_fits():
    # budget 500 (fits at 450 or less): sdpa, batch and checkpointing together, cheapest first, reach 350
    s, run = saving({"model.attn_implementation": 100, "training.per_device_train_batch_size": 250,
                     "training.gradient_checkpointing": 300, "lora.enabled": 200, "training.optim": 10})
    found = suggest(s, 1000, 500, run)
    combo = found[0]
    assert combo.title == ("Combine: " + SDPA + "; Batch per GPU 2 -> 1 with gradient accumulation 2 -> 4 "
                           "(same effective batch); " + CHECKPOINTING)
    assert combo.changes == {"model.attn_implementation": "sdpa", "training.per_device_train_batch_size": 1,
                             "training.gradient_accumulation_steps": 4, "training.gradient_checkpointing": True}
    assert combo.peak_bytes == 350 and combo.fits is True
    assert len(found) == 1 + 6  # the combination, then every single change that saves something


def test_combination_skips_clashing_changes_and_may_still_not_fit():
    # budget 500 (fits at 450): sdpa 900, then batch 650, checkpointing 550, LoRA 530; QLoRA sets
    # lora.enabled again and is skipped, so the combination ends at 530, over the budget
    s, run = saving({"model.attn_implementation": 100, "training.per_device_train_batch_size": 250,
                     "training.gradient_checkpointing": 100, "lora.enabled": 20, "quantization.load_in_4bit": 5})
    found = suggest(s, 1000, 500, run)
    combo = found[0]
    assert combo.title == "Combine: " + "; ".join([SDPA, BATCH, CHECKPOINTING, LORA])
    assert combo.peak_bytes == 530 and combo.fits is False
    assert combo.changes["lora.enabled"] is True and "quantization.load_in_4bit" not in combo.changes


def test_combination_stops_once_it_fits():
    s, run = saving({"model.attn_implementation": 100, "training.per_device_train_batch_size": 250,
                     "training.gradient_checkpointing": 100, "lora.enabled": 20})
    combo = suggest(s, 1000, 600, run)[0]  # fits at 540: sdpa, batch, checkpointing reach 550, LoRA 530
    assert combo.title == "Combine: " + "; ".join([SDPA, BATCH, CHECKPOINTING, LORA])
    assert combo.peak_bytes == 530 and combo.fits is True
    s, run = saving({"model.attn_implementation": 100, "training.per_device_train_batch_size": 250,
                     "training.gradient_checkpointing": 200, "lora.enabled": 20})
    combo = suggest(s, 1000, 600, run)[0]  # 450 after checkpointing: LoRA is not needed
    assert combo.title == "Combine: " + "; ".join([SDPA, BATCH, CHECKPOINTING]) and combo.peak_bytes == 450


def test_no_combination_of_a_single_change():
    s, run = saving({"training.gradient_checkpointing": 100})
    found = suggest(s, 1000, 500, run)
    assert [sug.title for sug in found] == [CHECKPOINTING] and found[0].fits is False


def test_fitting_runs_with_plenty_of_room_are_offered_speed():
    s = _settings(model={"dtype": "bfloat16"}, lora={"enabled": True},
                  quantization={"load_in_4bit": True},
                  training={"bf16": True, "per_device_train_batch_size": 1, "gradient_accumulation_steps": 8,
                            "gradient_checkpointing": True},
                  data={"max_seq_length": 1000})

    def run(changed: dict[str, Any]) -> int:  # batch x 1000, +500 without checkpointing, +300 in 16-bit
        return (by_tokens(changed) + (0 if changed["training.gradient_checkpointing"] else 500)
                + (0 if changed["quantization.load_in_4bit"] else 300))

    # budget 10,000 ("fits" at 9,000): the batch grows 1 -> 8 (8,000) keeping the effective batch
    found = suggest(s, run(s), 10_000, run)
    assert [(sug.title, sug.changes, sug.peak_bytes) for sug in found] == [
        ("Turn gradient checkpointing off: no recomputation, steps ~20-30% faster",
         {"training.gradient_checkpointing": False}, 1500),
        ("Batch per GPU 1 -> 8 with accumulation 8 -> 1 (same effective batch): fewer, fuller steps",
         {"training.per_device_train_batch_size": 8, "training.gradient_accumulation_steps": 1}, 8000),
        ("Load the base model in 16-bit instead of k-bit: no dequantization, faster steps",
         {"quantization.load_in_4bit": False, "quantization.load_in_8bit": False}, 1300),
    ]
    assert all(sug.kind == "speed" and sug.fits for sug in found)
    # budget 5,000: the batch stops at 4 (8 would not fit), accumulation 8 -> 2
    found = suggest(s, run(s), 5_000, run)
    assert ("Batch per GPU 1 -> 4 with accumulation 8 -> 2 (same effective batch): fewer, fuller steps"
            in [sug.title for sug in found])


def test_speed_batch_growth_without_accumulation_changes_the_effective_batch():
    s = _settings(training={"per_device_train_batch_size": 2, "gradient_accumulation_steps": 1},
                  data={"max_seq_length": 100})
    found = suggest(s, 200, 10_000, by_tokens)
    assert [(sug.title, sug.changes) for sug in found] == [
        ("Batch per GPU 2 -> 16 (larger effective batch; consider a higher learning rate)",
         {"training.per_device_train_batch_size": 16})]  # 8x at most
    odd = {**s, "training.gradient_accumulation_steps": 3}  # 3 does not split in halves: keep the batch
    assert suggest(odd, 200, 10_000, by_tokens) == []


@pytest.mark.parametrize("peak,expected", [(5_999, "speed"), (6_000, "none"), (9_000, "none"), (9_001, "memory")])
def test_which_kind_of_suggestion_by_peak(peak: int, expected: str):
    s = _settings(training={"per_device_train_batch_size": 2, "gradient_accumulation_steps": 1},
                  data={"max_seq_length": 100})

    def run(changed: dict[str, Any]) -> int:
        return peak if changed == s else 100

    found = suggest(s, peak, 10_000, run)
    kinds = {sug.kind for sug in found}
    assert kinds == (set() if expected == "none" else {expected})


def test_cheaper_fitting_change_comes_first_even_when_it_saves_less():
    # both fit (720 or less): the batch split (cost 1) at 700 before checkpointing (cost 2) at 500
    s, run = saving({"training.per_device_train_batch_size": 300, "training.gradient_checkpointing": 500})
    assert titles(suggest(s, 1000, 800, run))[:2] == [BATCH, CHECKPOINTING]


def test_auto_dtype_moves_to_bfloat16_with_bf16_training():
    s = full_fine_tune(**{"model.dtype": "auto"})
    got = {title: changes for _, title, changes in _memory_candidates(s, 2400, by_tokens, None)}
    assert got["Train in bf16 mixed precision with bfloat16 weights"] == {"training.bf16": True,
                                                                          "model.dtype": "bfloat16"}


def test_sequence_search_stops_at_the_first_length_that_fits():
    # 512 tokens give exactly 90% of the budget, which "fits": the search stops there, not at 256
    def run(s: dict[str, Any]) -> int:
        return int(s["data.max_seq_length"]) * 9000 // 512

    got = {title: changes for _, title, changes in _memory_candidates(full_fine_tune(), 10_000, run, None)}
    assert got["Shorten max_seq_length 1024 -> 512 (longer examples get cut)"] == {"data.max_seq_length": 512}


def test_several_processes_without_a_strategy_are_offered_fsdp():
    s = full_fine_tune(**{"launch.strategy": "none"})
    got = [title for _, title, _ in _memory_candidates(s, 2400, by_tokens, None)]
    assert "Shard the model across the 2 processes with FSDP instead of replicating it" in got
    deepspeed = full_fine_tune(**{"launch.strategy": "deepspeed"})
    assert not any("FSDP" in t for _, t, _ in _memory_candidates(deepspeed, 2400, by_tokens, None))


@pytest.mark.parametrize("changes,cuda_only", [
    ({"quantization.load_in_4bit": True}, True), ({"quantization.load_in_8bit": True}, True),
    ({"training.bf16": True}, True), ({"training.fp16": True}, True), ({"training.optim": "paged_adamw_8bit"}, True),
    ({"training.optim": "adamw_bnb_8bit"}, True), ({"model.attn_implementation": "flash_attention_2"}, True),
    ({"launch.strategy": "fsdp"}, True), ({"launch.strategy": "deepspeed"}, True),
    ({"training.gradient_checkpointing": True}, False), ({"model.attn_implementation": "sdpa"}, False),
    ({"training.optim": "adafactor"}, False), ({"launch.strategy": "ddp"}, False),
    ({"lora.enabled": True, "lora.target_modules": "all-linear"}, False), ({"training.bf16": False}, False),
])
def test_which_changes_need_cuda(changes, cuda_only):
    assert needs_cuda(changes) is cuda_only


def test_a_cpu_run_is_offered_only_what_works_on_a_cpu():
    s, run = saving({"model.attn_implementation": 100, "training.per_device_train_batch_size": 250,
                     "training.gradient_checkpointing": 300, "training.bf16": 50, "training.optim": 20,
                     "lora.enabled": 600, "quantization.load_in_4bit": 50, "data.max_seq_length": 79,
                     "launch.strategy": 10})
    on_cpu = titles(suggest(s, 1000, 800, run, cuda=False))
    assert on_cpu == [CHECKPOINTING, LORA, BATCH, SDPA, "Shorten max_seq_length 1024 -> 128 (longer examples get cut)"]
    assert QLORA in titles(suggest(s, 1000, 800, run, cuda=True))


def test_a_cpu_run_with_room_is_not_offered_a_bigger_batch():
    s = _settings(training={"per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
                            "gradient_checkpointing": True},
                  data={"max_seq_length": 100})
    gpu = [sug.title for sug in suggest(s, 200, 10_000, by_tokens)]
    cpu = [sug.title for sug in suggest(s, 200, 10_000, by_tokens, cuda=False)]
    assert any(t.startswith("Batch per GPU") for t in gpu) and not any(t.startswith("Batch per GPU") for t in cpu)
    assert "Turn gradient checkpointing off: no recomputation, steps ~20-30% faster" in cpu


def test_batch_split_takes_the_largest_batch_that_fits():
    # budget 3000 ("fits" at 2700): batch 3 gives 3072 (tight, over 2700), batch 2 gives 2048
    got = {title: changes for _, title, changes in _memory_candidates(full_fine_tune(), 3000, by_tokens, None)}
    assert got["Batch per GPU 6 -> 2 with gradient accumulation 2 -> 6 (same effective batch)"] == {
        "training.per_device_train_batch_size": 2, "training.gradient_accumulation_steps": 6}


def test_sequence_search_goes_on_past_lengths_it_cannot_estimate():
    def run(s: dict[str, Any]) -> int:
        if int(s["data.max_seq_length"]) < 1024:
            raise ValueError("cannot estimate")
        return 100

    got = {title: changes for _, title, changes in _memory_candidates(full_fine_tune(), 10, run, None)}
    assert got["Shorten max_seq_length 1024 -> 128 (longer examples get cut)"] == {"data.max_seq_length": 128}
