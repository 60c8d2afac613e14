"""How each memory component responds to the settings that drive it, and the suggestions."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fixtures.estimates import cfg, empty_hub_cache  # noqa: F401 (an autouse fixture)
from runner.estimate import (Estimate, apply_changes, estimate, last_measured_peak, memory_signature, verdict)

GiB = 1024**3


def comp(est: Estimate, name: str) -> int:
    return next(c.bytes for c in est.components if c.name == name)


def test_components_sum_to_peak_and_peak_is_largest_phase():
    for config in (cfg(), cfg(lora__enabled=True), cfg(training__per_device_train_batch_size=1)):
        est = estimate(config)
        assert sum(c.bytes for c in est.components) == est.peak_bytes
        assert est.peak_bytes == max(est.phases.values()) == est.phases[est.phase]
        assert [c.name for c in est.components] == ["CUDA context", "frozen weights", "trainable weights", "gradients",
                                                    "optimizer state", "activations", "logits & loss", "overhead"]


def test_full_fine_tune_of_8b_is_optimizer_bound_and_huge():
    est = estimate(cfg(training__per_device_train_batch_size=1, training__gradient_checkpointing=True))
    # bf16 weights + bf16 grads + two bf16 Adam moments: 8 bytes per parameter
    assert comp(est, "trainable weights") == 8_030_261_248 * 2
    assert comp(est, "optimizer state") == 8_030_261_248 * 4
    assert est.peak_bytes > 60 * GiB


def test_activations_and_logits_scale_linearly_with_batch():
    lora = dict(lora__enabled=True, training__gradient_accumulation_steps=1)
    small, big = estimate(cfg(training__per_device_train_batch_size=2, **lora)), \
        estimate(cfg(training__per_device_train_batch_size=4, **lora))
    assert comp(big, "activations") == pytest.approx(2 * comp(small, "activations"), rel=0.01)
    assert comp(big, "logits & loss") == 2 * comp(small, "logits & loss")
    assert comp(big, "frozen weights") == comp(small, "frozen weights")


def test_sequence_length_linear_with_sdpa_quadratic_with_eager():
    def acts(seq, impl):
        return comp(estimate(cfg(lora__enabled=True, data__max_seq_length=seq, model__attn_implementation=impl,
                                 training__per_device_train_batch_size=1)), "activations")

    assert acts(4096, "sdpa") / acts(2048, "sdpa") == pytest.approx(2.0, rel=0.01)
    assert acts(4096, "eager") / acts(2048, "eager") > 2.8  # the seq x seq scores dominate
    assert acts(4096, "eager") > 3 * acts(4096, "sdpa")


def test_large_vocab_logits_dominate_small_models():
    est = estimate(cfg(model__name_or_path="Qwen/Qwen2.5-0.5B", training__per_device_train_batch_size=8))
    logits = comp(est, "logits & loss")
    assert logits == 8 * 1024 * 151936 * 12  # log-softmax output + its gradient + input gradient, fp32
    assert logits == max(c.bytes for c in est.components)


def test_precision_halves_weights():
    fp32 = estimate(cfg(model__dtype="float32", training__bf16=False, training__per_device_train_batch_size=1))
    bf16 = estimate(cfg(model__dtype="bfloat16", training__bf16=False, training__per_device_train_batch_size=1))
    assert comp(fp32, "optimizer state") == 2 * comp(bf16, "optimizer state")
    assert comp(fp32, "trainable weights") == 2 * comp(bf16, "trainable weights")


def test_mixed_precision_shrinks_activations_of_fp32_model():
    plain = estimate(cfg(model__name_or_path="gpt2", model__dtype="float32", training__bf16=False))
    mixed = estimate(cfg(model__name_or_path="gpt2", model__dtype="float32", training__bf16=True))
    assert comp(mixed, "activations") < 0.8 * comp(plain, "activations")


@pytest.mark.parametrize("optim,per_param", [
    ("adamw_torch", 8.0), ("adamw_torch_fused", 8.0), ("adamw_bnb_8bit", 2 * (1 + 4 / 256)),
    ("paged_adamw_8bit", 2 * (1 + 4 / 256)), ("paged_adamw_32bit", 8.0), ("lion_8bit", 1 + 4 / 256),
    ("sgd", 0.0), ("adagrad", 4.0), ("ademamix", 12.0),
])
def test_optimizer_state_per_trainable_param(optim, per_param):
    est = estimate(cfg(lora__enabled=True, training__optim=optim))
    state = next(c for c in est.components if c.name == "optimizer state")
    assert state.bytes == int(est.params_trainable * per_param)  # adapters are fp32
    assert state.evictable == optim.startswith("paged")


def test_adafactor_is_far_smaller_than_adam():
    adam = comp(estimate(cfg(training__optim="adamw_torch")), "optimizer state")
    ada = comp(estimate(cfg(training__optim="adafactor")), "optimizer state")
    assert 0 < ada < adam / 100


def test_quantization_sizes():
    def frozen(**q):
        return comp(estimate(cfg(lora__enabled=True, **{f"quantization__{k}": v for k, v in q.items()})),
                    "frozen weights")

    bf16 = frozen()
    int8 = frozen(load_in_8bit=True)
    nf4 = frozen(load_in_4bit=True)
    fp4 = frozen(load_in_4bit=True, bnb_4bit_quant_type="fp4")
    nf4_dq = frozen(load_in_4bit=True, bnb_4bit_use_double_quant=True)
    assert nf4_dq < nf4 == fp4 < int8 < bf16
    linear = 6_979_321_856  # Llama-3.1-8B weights inside its blocks
    other = 8_030_261_248 - linear  # embedding, head and norms, upcast to fp32 for k-bit training
    assert nf4 == int(linear * (0.5 + 4 / 64) + other * 4)
    # double quant saves about 0.37 bits per weight
    assert (nf4 - nf4_dq) * 8 / linear == pytest.approx(0.373, abs=0.01)


def test_gradient_checkpointing_cuts_activations_by_far():
    off = comp(estimate(cfg(lora__enabled=True)), "activations")
    on = comp(estimate(cfg(lora__enabled=True, training__gradient_checkpointing=True)), "activations")
    assert on < off / 8


def test_lora_dropout_keeps_masks():
    without = comp(estimate(cfg(lora__enabled=True, lora__lora_dropout=0.0)), "activations")
    with_ = comp(estimate(cfg(lora__enabled=True, lora__lora_dropout=0.1)), "activations")
    assert with_ > without


def test_sharding_divides_what_it_shards():
    def est(**launch):
        return estimate(cfg(training__per_device_train_batch_size=1, training__gradient_checkpointing=True,
                            **{f"launch__{k}": v for k, v in launch.items()}))

    single, ddp = est(), est(num_processes=4, strategy="ddp")
    fsdp = est(num_processes=4, strategy="fsdp")
    z1, z2, z3 = (est(num_processes=4, strategy="deepspeed", zero_stage=z) for z in (1, 2, 3))
    assert comp(ddp, "optimizer state") == comp(single, "optimizer state")  # replicated
    assert comp(fsdp, "optimizer state") == pytest.approx(comp(single, "optimizer state") / 4, abs=1)
    assert comp(z1, "optimizer state") < comp(single, "optimizer state") / 3
    assert comp(z1, "gradients") >= comp(z2, "gradients") * 3 or comp(z1, "gradients") == 0
    # ZeRO-3 also shards the bf16 weights (ZeRO-1/2 already shard the fp32 master copy), keeping two
    # gathered blocks of 218,112,000 parameters in flight
    assert comp(z2, "trainable weights") - comp(z3, "trainable weights") == pytest.approx(
        8_030_261_248 * 2 * 3 / 4 - 2 * 218_112_000 * 2, rel=0.001)
    assert fsdp.peak_bytes < ddp.peak_bytes / 2


def test_kbit_without_lora_is_an_error():
    from runner.estimate import EstimateError

    with pytest.raises(EstimateError, match="LoRA"):
        estimate(cfg(quantization__load_in_4bit=True))


def test_verdict_bands():
    assert verdict(80, 100) == "fits"
    assert verdict(95, 100) == "tight"
    assert verdict(101, 100) == "does not fit"


@pytest.mark.parametrize("config,budget", [
    (cfg(lora__enabled=True, training__per_device_train_batch_size=8), 24 * GiB),
    (cfg(lora__enabled=True, training__per_device_train_batch_size=4, data__max_seq_length=4096), 40 * GiB),
    (cfg(training__per_device_train_batch_size=2), 48 * GiB),
    (cfg(model__name_or_path="Qwen/Qwen2.5-0.5B", training__per_device_train_batch_size=16), 12 * GiB),
    (cfg(model__name_or_path="gpt2", model__attn_implementation="eager", model__dtype="float32",
         training__bf16=False, training__per_device_train_batch_size=32), 8 * GiB),
])
def test_memory_suggestions_really_fit(config, budget):
    est = estimate(config, budget_bytes=budget, gpu_count=1)
    assert est.verdict == "does not fit"
    assert est.suggestions and est.suggestions[0].fits
    assert all(s.kind == "memory" for s in est.suggestions)
    for sug in est.suggestions:
        changed = apply_changes(config, sug.changes)  # every suggestion is a valid config
        again = estimate(changed).peak_bytes
        assert again == sug.peak_bytes
        assert (again <= budget) == sug.fits
        assert again < est.peak_bytes


def test_batch_suggestion_keeps_effective_batch():
    config = cfg(lora__enabled=True, training__per_device_train_batch_size=8, training__gradient_accumulation_steps=2)
    est = estimate(config, budget_bytes=24 * GiB)
    batch = next(s for s in est.suggestions if "training.per_device_train_batch_size" in s.changes)
    new_b = batch.changes["training.per_device_train_batch_size"]
    assert new_b < 8 and new_b * batch.changes["training.gradient_accumulation_steps"] == 16


def test_plenty_of_memory_suggests_speed():
    config = cfg(lora__enabled=True, quantization__load_in_4bit=True, training__gradient_checkpointing=True,
                 training__per_device_train_batch_size=1, training__gradient_accumulation_steps=4)
    est = estimate(config, budget_bytes=80 * GiB)
    assert est.verdict == "fits"
    kinds = {tuple(sorted(s.changes)) for s in est.suggestions}
    assert all(s.kind == "speed" and s.peak_bytes <= 0.9 * 80 * GiB for s in est.suggestions)
    assert ("training.gradient_checkpointing",) in kinds
    assert estimate(config, budget_bytes=12 * GiB).suggestions == [] or \
        estimate(config, budget_bytes=12 * GiB).verdict != "fits"


def test_memory_signature_tracks_memory_settings_only():
    base = cfg()
    assert memory_signature(base) == memory_signature(cfg())
    assert memory_signature(base) == memory_signature(cfg(training__learning_rate=1e-3, training__seed=7))
    assert memory_signature(base) != memory_signature(cfg(training__per_device_train_batch_size=2))
    assert memory_signature(base) != memory_signature(cfg(lora__enabled=True))


def _write_run(root, name, signature, time, peaks):
    run = root / name
    run.mkdir(parents=True)
    events = [{"type": "run_started", "time": time, "step": 0, "memory_signature": signature,
               "estimated_memory": {"peak_bytes": 123}}]
    for i, p in enumerate(peaks):
        events.append({"type": "log", "time": time + i + 1, "step": i + 1, "loss": 1.0,
                       "gpu_mem_peak_allocated": p, "gpu_mem_peak_reserved": p + 10, "gpu_mem_nvml_used": p + 20})
    events.append({"type": "run_finished", "time": time + 99, "step": 9, "gpu_mem_peak_allocated": max(peaks)})
    (run / "events.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n{torn")


def test_last_measured_peak_picks_newest_matching_run(tmp_path):
    config = cfg()
    sig = memory_signature(config)
    _write_run(tmp_path, "a", sig, 1000.0, [5, 9, 7])
    _write_run(tmp_path, "b", sig, 2000.0, [50, 90, 70])
    _write_run(tmp_path, "c", "other", 3000.0, [500])
    found = last_measured_peak(config, tmp_path)
    assert found["run_dir"].endswith("b")
    assert (found["peak_allocated"], found["peak_reserved"], found["nvml_used"]) == (90, 100, 110)
    assert found["estimated_peak"] == 123
    assert last_measured_peak(cfg(training__per_device_train_batch_size=3), tmp_path) is None
    assert last_measured_peak(config, tmp_path / "missing") is None


def test_estimator_imports_no_heavy_library():
    code = (
        "import sys, json\n"
        "from runner.estimate import estimate\n"
        "import runner.gpu, runner.commands.estimate_cmds\n"
        "from runner.schema import Config\n"
        "estimate(Config(model={'name_or_path': 'meta-llama/Llama-3.1-8B'}), budget_bytes=24 << 30)\n"
        "runner.gpu.probe()\n"
        "heavy = ('torch', 'transformers', 'peft', 'bitsandbytes', 'accelerate', 'datasets')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
