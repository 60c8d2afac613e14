"""The simulated training step (runner.simulate) against the analytic estimate, and `estimate --simulate`.

The simulations run in subprocesses, as they do for users: they import torch, transformers and peft and
replace a few kernels with GPU-like stand-ins, none of which may leak into the test process.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import python_env
from runner import gpu
from runner.cli import main
from runner.estimate import apply_changes
from runner.estimate.architecture import resolve
from runner.estimate.memory import breakdown, settings
from runner.estimate.params import layout
from runner.schema import Config

TOLERANCE = 0.07
LLAMA = dict(model_type="llama", vocab_size=4096, hidden_size=256, intermediate_size=768, num_hidden_layers=3,
             num_attention_heads=8, num_key_value_heads=2, tie_word_embeddings=False, dtype="bfloat16")
QWEN = dict(model_type="qwen2", vocab_size=6144, hidden_size=192, intermediate_size=640, num_hidden_layers=3,
            num_attention_heads=6, num_key_value_heads=2, tie_word_embeddings=True, dtype="bfloat16")
# An architecture the analytic estimator has no layout for, which transformers builds from its config.
NEOX = dict(model_type="gpt_neox", vocab_size=2048, hidden_size=128, intermediate_size=512, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=512, rotary_pct=0.25, tie_word_embeddings=False)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)
    gpu.reset()


def model_dir(tmp_path, name, spec) -> str:
    path = tmp_path / name
    path.mkdir(exist_ok=True)
    (path / "config.json").write_text(json.dumps(spec))
    return str(path)


def config(path: str, mode: str, batch: int, seq: int, ckpt: bool) -> Config:
    base = Config(model={"name_or_path": path, "dtype": "bfloat16"}, data={"max_seq_length": seq},
                  training={"bf16": True, "per_device_train_batch_size": batch, "gradient_checkpointing": ckpt,
                            "optim": "adamw_torch"})
    changes = {"lora.enabled": mode != "full", "lora.r": 8, "lora.target_modules": "all-linear",
               "quantization.load_in_4bit": mode == "qlora", "quantization.bnb_4bit_compute_dtype": "bfloat16"}
    return apply_changes(base, changes)


def simulate_in_subprocess(configs: list[Config]) -> list[dict]:
    """runner.simulate.simulate on each config, in one fresh interpreter (imports paid once)."""
    code = ("import json, sys\nfrom runner.schema import Config\nfrom runner.simulate import simulate\n"
            "for line in sys.stdin:\n    print('RESULT ' + json.dumps(simulate(Config.model_validate(json.loads(line)))),"
            " flush=True)\n")
    text = "\n".join(json.dumps(c.model_dump(mode="json")) for c in configs) + "\n"
    out = subprocess.run([sys.executable, "-c", code], input=text, capture_output=True, text=True,
                         env=python_env(), timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return [json.loads(line[7:]) for line in out.stdout.splitlines() if line.startswith("RESULT ")]


def analytic_tensors(c: Config) -> int:
    arch = resolve(c)
    return max(breakdown(arch, layout(arch), settings(c)).tensors.values())


ROWS = [("llama", "full", 1, 256, False), ("llama", "full", 2, 128, True), ("llama", "lora", 2, 256, False),
        ("llama", "lora", 1, 128, True), ("llama", "qlora", 1, 256, False), ("llama", "qlora", 2, 128, True),
        ("qwen", "full", 2, 256, False), ("qwen", "lora", 1, 256, True), ("qwen", "qlora", 2, 256, False),
        ("llama", "full", 2, 128, False)]


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """Every row simulated once, in one subprocess: (row, config, result)."""
    root = tmp_path_factory.mktemp("models")
    paths = {"llama": model_dir(root, "llama", LLAMA), "qwen": model_dir(root, "qwen", QWEN)}
    configs = [config(paths[row[0]], *row[1:]) for row in ROWS]
    results = simulate_in_subprocess(configs)
    assert len(results) == len(ROWS)
    return list(zip(ROWS, configs, results))


def test_simulated_step_matches_the_analytic_estimate_on_tiny_models(simulated):
    report, bad = [], []
    for row, c, sim in simulated:
        est = analytic_tensors(c)
        ratio = est / sim["tensor_peak_bytes"]
        line = f"{row}: simulated {sim['tensor_peak_bytes']:,} analytic {est:,} ratio {ratio:.3f}"
        report.append(line)
        if abs(ratio - 1) > TOLERANCE:
            bad.append(line)
        # the simulation adds what it cannot see from the analytic model, labelled
        assert sim["peak_bytes"] == sim["tensor_peak_bytes"] + sum(sim["unseen"].values())
        assert all("(analytic)" in name for name in sim["unseen"])
        assert set(sim["phases"]) == {"forward", "backward", "optimizer step"}
    assert not bad, "\n".join(report)


def test_simulation_sees_checkpointing_lora_and_4bit(simulated):
    by_row = {row: sim for row, _, sim in simulated}
    full = by_row[("llama", "full", 2, 128, False)]
    ckpt = by_row[("llama", "full", 2, 128, True)]
    lora = by_row[("llama", "lora", 2, 256, False)]
    qlora = by_row[("llama", "qlora", 1, 256, False)]
    acts = "activations & temporaries"
    assert full["split"]["forward"][acts] > 1.5 * ckpt["split"]["forward"][acts]  # the logits stay, blocks go
    assert full["split"]["optimizer step"]["optimizer state"] > 10 * lora["split"]["optimizer step"]["optimizer state"]
    assert lora["params_trainable"] < full["params_trainable"] / 10
    assert any("4-bit" in note for note in qlora["notes"])
    # packed 4-bit block weights: the frozen weights shrink although embeddings and norms are upcast to fp32
    assert qlora["split"]["forward"]["weights"] < lora["split"]["forward"]["weights"] * 1.6


def test_estimate_simulate_prints_both_figures(tmp_path, capsys):
    llama = model_dir(tmp_path, "llama", LLAMA)
    code = main(["estimate", "demo", "--simulate", "--gpu-memory", "24GiB", "--set", f'model.name_or_path="{llama}"',
                 "--set", "lora.enabled=true", "--set", 'model.dtype="bfloat16"'])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Simulated training step" in out and "analytic" in out and "simulated" in out
    for phase in ("forward", "backward", "optimizer step"):
        assert phase in out
    assert "CUDA context" in out and "<- peak" in out


def test_estimate_simulate_on_an_unknown_architecture(tmp_path, capsys):
    neox = model_dir(tmp_path, "neox", NEOX)
    override = ["--set", f'model.name_or_path="{neox}"']
    assert main(["estimate", "demo", *override]) == 2  # the analytic estimator cannot size it
    assert "gpt_neox" in capsys.readouterr().err
    assert main(["estimate", "demo", "--simulate", "--gpu-memory", "24GiB", *override]) == 0
    out = capsys.readouterr().out
    assert "the simulation is the estimate" in out and "gpt_neox" in out and "FITS:" in out
    assert "backward" in out and "CUDA context" in out


def test_simulate_reports_what_it_cannot_build(tmp_path, capsys):
    broken = model_dir(tmp_path, "broken", {"model_type": "no_such_architecture", "hidden_size": 8})
    assert main(["estimate", "demo", "--simulate", "--set", f'model.name_or_path="{broken}"']) == 2
    err = capsys.readouterr().err
    assert "cannot simulate" in err and "Traceback" not in err


def test_the_caller_side_imports_no_torch():
    from conftest import imported_heavy_modules

    assert imported_heavy_modules("import runner.simulate, runner.commands.estimate_cmds") == []


async def test_editor_simulates_on_ctrl_e_and_shows_it_in_the_gauge_and_the_launch_dialog(tmp_path):
    import asyncio
    import time

    from textual.widgets import Static

    from runner import presets
    from runner.estimate import memory_signature
    from tests.conftest import settle_editor
    from tui.app import TunedeckApp, state_from
    from tui.screens.launch_dialog import simulated_text
    from tui.services import NoProbe

    llama = model_dir(tmp_path, "llama", LLAMA)
    preset = tmp_path / "tiny.toml"
    preset.write_text(f'[model]\nname_or_path = "{llama}"\ndtype = "bfloat16"\n[lora]\nenabled = true\n'
                      '[data]\nmax_seq_length = 128\n[training]\nper_device_train_batch_size = 1\n')
    app = TunedeckApp(state_from(presets.load(str(preset))), probe=lambda: NoProbe(reason="no GPU", driver=""))

    def gauge() -> str:
        return str(app.editor.query_one("#gauge-body", Static).render())

    async with app.run_test(size=(100, 40)) as pilot:
        await settle_editor(pilot)
        signature = memory_signature(app.editor.state.config)
        assert "not run" in simulated_text(signature)
        await pilot.press("ctrl+e")
        await pilot.pause()
        assert "simulating" in gauge()
        deadline = time.monotonic() + 600  # a fresh interpreter imports torch & co. first
        def running() -> bool:
            return any(w.name == "simulate a step" and not w.is_finished for w in app.workers)

        while running() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await pilot.pause()
        text = gauge()
        assert "simulated: " in text and "GiB" in text, text
        assert simulated_text(signature).startswith("simulated: ")  # what the launch dialog prints
        await app.editor.set_field("training.per_device_train_batch_size", 2)
        await settle_editor(pilot)
        assert "simulated:" not in gauge()  # the figure belongs to the old settings
