"""One set of out-of-memory remedies: the estimator's suggestions, shown alike by the memory gauge,
`tunedeck estimate`, the trainer's failure message and the monitor's diagnosis; and a CPU target is
never offered a change it cannot run (bitsandbytes, 16-bit mixed precision, bigger batches)."""

from __future__ import annotations

import pytest

from runner import presets
from runner.diagnose import diagnose_exception, diagnose_text, memory_capacity
from runner.estimate import estimate, remedies
from runner.estimate.memory import breakdown, settings
from runner.estimate.params import layout
from runner.estimate.architecture import resolve
from runner.estimate.suggest import (MIN_SEQ, SPEED_HEADROOM, TIGHT_MARGIN, _memory_candidates, needs_cuda,
                                     suggest, verdict)
from runner.gpu import GpuReport
from runner.run_diagnosis import diagnose
from runner.run_model import RunModel

GiB = 2**30
CAPACITY_GIB = 8.0
OOM = (f"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity "
       f"of {CAPACITY_GIB:.2f} GiB of which 3.06 MiB is free.")


def oomed_run(message: str, device: dict | None = None, peak_reserved: int | None = None) -> RunModel:
    model = RunModel()
    events = [{"type": "run_started", "step": 0, "device": device or {"type": "cuda", "count": 1}}]
    if peak_reserved:
        events.append({"type": "log", "step": 1, "loss": 2.0, "gpu_mem_peak_reserved": peak_reserved})
    events.append({"type": "run_failed", "step": 1, "reason": "oom", "message": message})
    model.fold(events)
    return model


def pairs(suggestions) -> list[tuple[str, dict]]:
    return [(s.title, dict(s.changes)) for s in suggestions]


# --- one list, wherever it is shown ----------------------------------------------------------------------
def test_diagnosis_of_an_oom_run_lists_the_estimators_remedies():
    config = presets.require("lora-1b").config
    gauge = estimate(config, int(CAPACITY_GIB * GiB), 1).suggestions  # what the editor's gauge lists
    assert len(gauge) >= 3 and estimate(config).peak_bytes > CAPACITY_GIB * GiB
    finding = diagnose(oomed_run(OOM), config)[0]
    assert finding.code == "oom"
    assert pairs(finding.suggestions) == pairs(gauge)
    assert finding.changes == gauge[0].changes  # the banner's key applies the gauge's first remedy
    assert pairs(remedies(config, int(CAPACITY_GIB * GiB), 1, out_of_memory=True)) == pairs(gauge)


def test_the_trainers_failure_message_names_the_same_remedies():
    config = presets.require("lora-1b").config
    gauge = estimate(config, int(CAPACITY_GIB * GiB), 1).suggestions
    exc = RuntimeError(OOM)
    text = diagnose_exception(exc, config=config, gpu_count=1).suggestion
    assert text == diagnose_text(OOM, 1, config=config).suggestion
    for sug in gauge[:3]:
        assert sug.title in text
        for key, value in sug.changes.items():
            assert f"{key}=" in text
    assert gauge[3].title not in text  # one line: the first three
    # the --set spelling of each change loads as that value
    first = gauge[0]
    overrides = [f"{k}={'true' if v is True else 'false' if v is False else repr(v).replace(chr(39), chr(34))}"
                 for k, v in first.changes.items()]
    changed = presets.require("lora-1b", overrides).config
    for key, value in first.changes.items():
        section, name = key.split(".")
        assert getattr(getattr(changed, section), name) == value
    assert "training.gradient_accumulation_steps=" in text


def test_without_a_config_the_general_advice_stays():
    generic = diagnose_text(OOM, 1).suggestion
    assert "gradient_checkpointing" in generic
    finding = diagnose(oomed_run(OOM), None)[0]
    assert [s.title for s in finding.suggestions] == [generic] and finding.changes == {}


def test_an_estimate_that_says_it_fits_still_gets_remedies_after_an_oom():
    """The run died although the estimate fits the card: memory must fall below the estimated peak."""
    config = presets.require("lora-1b").config
    peak = estimate(config).peak_bytes
    roomy = "CUDA out of memory. GPU 0 has a total capacity of 80.00 GiB of which 1 MiB is free"
    assert estimate(config, 80 * GiB, 1).verdict == "fits"
    found = diagnose(oomed_run(roomy), config)[0].suggestions
    assert pairs(found) == pairs(estimate(config, peak, 1).suggestions) and found
    assert all(s.changes for s in found)


def test_without_the_capacity_the_measured_peak_is_the_budget():
    config = presets.require("lora-1b").config
    measured = 9 * GiB
    found = diagnose(oomed_run("CUDA out of memory. Tried to allocate 2.00 GiB", peak_reserved=measured), config)
    assert pairs(found[0].suggestions) == pairs(estimate(config, measured, 1).suggestions)


@pytest.mark.parametrize(("text", "expected"), [
    ("GPU 0 has a total capacity of 79.15 GiB of which", int(79.15 * GiB)),
    ("GPU 0 has a total capacity of 512.00 MiB of which", 512 * 2**20),
    ("CUDA out of memory. Tried to allocate 2.00 GiB", None),
])
def test_the_capacity_named_by_torchs_error(text, expected):
    assert memory_capacity(text) == expected


# --- each remedy's rule at its boundary --------------------------------------------------------------------
def candidates(overrides: list[str], gpu_count: int | None = None) -> dict[tuple[str, ...], str]:
    config = presets.require("full-small", overrides).config
    arch = resolve(config)
    lay = layout(arch)
    s = settings(config)
    found = _memory_candidates(s, 1, lambda changed: breakdown(arch, lay, changed).peak_bytes, gpu_count)
    return {tuple(sorted(changes)): title for _, title, changes in found}


def has(found: dict[tuple[str, ...], str], *keys: str) -> bool:
    return tuple(sorted(keys)) in found


def test_batch_split_needs_a_batch_above_one():
    batch = ("training.per_device_train_batch_size", "training.gradient_accumulation_steps")
    assert not has(candidates(["training.per_device_train_batch_size=1"]), *batch)
    two = candidates(["training.per_device_train_batch_size=2", "training.gradient_accumulation_steps=3"])
    assert has(two, *batch) and "2 -> 1" in two[tuple(sorted(batch))] and "3 -> 6" in two[tuple(sorted(batch))]


def test_checkpointing_is_offered_only_while_off():
    assert has(candidates(["training.gradient_checkpointing=false"]), "training.gradient_checkpointing")
    assert not has(candidates(["training.gradient_checkpointing=true"]), "training.gradient_checkpointing")


def test_mixed_precision_is_offered_only_without_bf16_or_fp16():
    off = ["training.bf16=false", "training.fp16=false", "launch.mixed_precision='no'"]
    assert any("training.bf16" in keys for keys in candidates(off))
    assert not any("training.bf16" in keys for keys in candidates(["training.bf16=true", "training.fp16=false"]))
    assert not any("training.bf16" in keys for keys in candidates(["training.bf16=false", "training.fp16=true"]))


def test_an_8bit_optimizer_replaces_only_32bit_state():
    assert has(candidates(["training.optim='adamw_torch'"]), "training.optim")
    assert not has(candidates(["training.optim='adamw_bnb_8bit'"]), "training.optim")


def test_sequences_shorten_down_to_the_floor_and_not_below():
    assert not has(candidates([f"data.max_seq_length={MIN_SEQ}"]), "data.max_seq_length")
    above = candidates([f"data.max_seq_length={MIN_SEQ + 1}"])
    assert has(above, "data.max_seq_length") and f"-> {MIN_SEQ}" in above[("data.max_seq_length",)]


def test_lora_and_qlora_follow_what_is_already_on():
    lora = ("lora.enabled", "lora.target_modules")
    assert has(candidates(["lora.enabled=false"]), *lora)
    four_bit = ("quantization.bnb_4bit_quant_type", "quantization.bnb_4bit_use_double_quant",
                "quantization.load_in_4bit", "quantization.load_in_8bit")
    with_lora = candidates(["lora.enabled=true"])
    assert not has(with_lora, *lora) and has(with_lora, *four_bit)
    quantized = candidates(["lora.enabled=true", "quantization.load_in_4bit=true"])
    assert not has(quantized, *four_bit)


def test_sharding_needs_more_gpus_than_processes_and_full_weights():
    shard = ("launch.num_processes", "launch.strategy")
    assert has(candidates(["lora.enabled=false", "launch.num_processes=1"], gpu_count=2), *shard)
    assert not has(candidates(["lora.enabled=false", "launch.num_processes=2"], gpu_count=2), *shard)
    assert not has(candidates(["lora.enabled=true", "launch.num_processes=1"], gpu_count=2), *shard)


def test_eager_attention_is_replaced_by_sdpa():
    assert has(candidates(["model.attn_implementation='eager'"]), "model.attn_implementation")
    assert not has(candidates(["model.attn_implementation='sdpa'"]), "model.attn_implementation")


def test_fit_and_speed_thresholds():
    budget = 1000
    assert verdict(int(budget * (1 - TIGHT_MARGIN)), budget) == "fits"
    assert verdict(int(budget * (1 - TIGHT_MARGIN)) + 1, budget) == "tight"
    assert verdict(budget, budget) == "tight" and verdict(budget + 1, budget) == "does not fit"
    s = settings(presets.require("demo", ["training.gradient_checkpointing=true"]).config)
    run = lambda changed: 100  # noqa: E731 - every change fits easily
    assert suggest(s, int(budget * SPEED_HEADROOM) - 1, budget, run)  # memory to spare: faster options
    assert suggest(s, int(budget * SPEED_HEADROOM), budget, run) == []


# --- a CPU target ------------------------------------------------------------------------------------------
CPU_ONLY = GpuReport(available=False, reason="no NVIDIA driver found")


def gpu_count(report: GpuReport) -> int | None:
    return len(report.gpus) if report.available else None  # what the editor and `tunedeck estimate` pass


def test_the_cpu_demo_is_not_told_to_grow_its_batch():
    demo = presets.require("demo").config
    assert demo.launch.device == "auto"
    roomy = estimate(demo, 24 * GiB, gpu_count(CPU_ONLY))
    assert roomy.verdict == "fits" and roomy.suggestions == []
    # the same preset meant for a GPU does get the larger batch: the rule is the target, not the numbers
    on_gpu = estimate(presets.require("demo", ["launch.device='cuda'"]).config, 24 * GiB, gpu_count(CPU_ONLY))
    assert any("training.per_device_train_batch_size" in s.changes for s in on_gpu.suggestions)


def test_a_cpu_target_gets_no_cuda_only_remedy():
    demo = presets.require("demo").config
    tight = estimate(demo, 40 * 2**20, gpu_count(CPU_ONLY))
    assert tight.verdict == "does not fit" and tight.suggestions
    assert not any(needs_cuda(s.changes) for s in tight.suggestions)
    on_gpu = estimate(presets.require("demo", ["launch.device='cuda'"]).config, 40 * 2**20, 1)
    assert any(needs_cuda(s.changes) for s in on_gpu.suggestions)  # bf16 and the 8-bit optimizer there


@pytest.mark.parametrize(("changes", "cuda_only"), [
    ({"quantization.load_in_4bit": True}, True), ({"quantization.load_in_8bit": True}, True),
    ({"training.bf16": True}, True), ({"training.fp16": True}, True), ({"training.optim": "paged_adamw_8bit"}, True),
    ({"launch.strategy": "fsdp"}, True), ({"model.attn_implementation": "flash_attention_2"}, True),
    ({"quantization.load_in_4bit": False, "quantization.load_in_8bit": False}, False),
    ({"training.optim": "adamw_torch"}, False), ({"model.attn_implementation": "sdpa"}, False),
    ({"training.gradient_checkpointing": True}, False), ({"lora.enabled": True}, False),
])
def test_what_needs_cuda(changes, cuda_only):
    assert needs_cuda(changes) is cuda_only


async def test_the_cpu_demos_gauge_lists_no_batch_size():
    from tui.app import TunedeckApp, state_from
    from tui.services import NoProbe
    from tui.widgets.memory_gauge import MemoryGauge

    from conftest import settle_editor

    app = TunedeckApp(state_from(presets.load("demo")), probe=lambda: NoProbe(reason="no NVIDIA driver found"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle_editor(pilot)
        assert app.editor.estimate is not None and app.editor.estimate.suggestions == []
        text = str(app.editor.query_one(MemoryGauge).query_one("#gauge-body").render())
        assert "GiB" in text and "Batch" not in text and "faster" not in text


def test_a_job_that_died_out_of_memory_is_told_the_remedies_for_its_config(tmp_path):
    """SLURM's settle (and the local supervisor) read only the log tail: the run's config sizes the advice."""
    from runner import slurm
    from runner.rundir import RunDir

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    config = presets.require("demo").config
    presets.save(config, run.config)
    run.log.write_text("Traceback (most recent call last):\nRuntimeError: DefaultCPUAllocator: can't allocate memory: "
                       "you tried to allocate 274877906944 bytes\n")
    run.update_status(state="running")
    slurm.settle(run, 1)
    status = run.read_status()
    assert status["state"] == "failed" and status["reason"] == "oom"
    expected = remedies(config, None, 0, out_of_memory=True)
    assert expected and status["suggestion"].startswith("Out of memory; try: " + expected[0].title)
    assert not any(needs_cuda(s.changes) for s in expected)  # a CPU run: no CUDA-only remedy
