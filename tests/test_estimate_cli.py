"""`tunedeck estimate` and `tunedeck gpus` end to end through the real CLI entry point."""

from __future__ import annotations

import json

import pytest

from runner import gpu
from runner.cli import main
from runner.commands.estimate_cmds import parse_size


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    for var in ("TUNEDECK_CONFIG_DIR", "TUNEDECK_CACHE_DIR", "TUNEDECK_STATE_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)
    gpu.reset()


def test_parse_size():
    assert parse_size("24GiB") == 24 << 30
    assert parse_size("80GB") == 80 * 10**9
    assert parse_size("16G") == 16 << 30
    assert parse_size("1.5TiB") == int(1.5 * (1 << 40))
    import argparse

    for bad in ("lots", "-3G", "24XB", "0"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_size(bad)


def test_estimate_table_fits(capsys):
    assert main(["estimate", "qlora-8b", "--gpu-memory", "24GiB"]) == 0
    out = capsys.readouterr().out
    for name in ("frozen weights", "optimizer state", "activations", "logits & loss", "peak per GPU"):
        assert name in out
    assert "FITS:" in out and "(evictable)" in out


def test_estimate_does_not_fit_exits_1_with_suggestions(capsys):
    assert main(["estimate", "lora-1b", "--gpu-memory", "8GiB"]) == 1
    out = capsys.readouterr().out
    assert "DOES NOT FIT" in out and "To fit:" in out and "set " in out


def test_estimate_json_and_gpus_flag(capsys):
    assert main(["estimate", "full-small", "--gpus", "2", "--json", "--gpu-memory", "80GiB"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "fits" and data["peak_bytes"] == sum(c["bytes"] for c in data["components"])
    assert any("2 processes" in n for n in data["notes"])


def test_estimate_without_gpu_or_budget(capsys):
    assert main(["estimate", "demo"]) == 0
    assert "pass --gpu-memory" in capsys.readouterr().out


def test_estimate_unknown_model_is_a_clear_error(capsys):
    assert main(["estimate", "demo", "--set", 'model.name_or_path="nobody/nothing-7b"']) == 2
    err = capsys.readouterr().err
    assert "nobody/nothing-7b" in err and "model.hidden_size" in err and "Traceback" not in err


def test_estimate_missing_file(capsys):
    assert main(["estimate", "no-such-preset.toml"]) == 2
    assert "no-such-preset" in capsys.readouterr().err


def test_estimate_shows_last_measured_peak(capsys, tmp_path):
    from runner.estimate import memory_signature
    from runner.presets import require_config

    sig = memory_signature(require_config("qlora-8b"))
    from runner.runs_home import runs_home

    run = runs_home() / "qlora-8b-1"  # where a run of this preset goes by default
    run.mkdir(parents=True)
    events = [{"type": "run_started", "time": 1.0, "step": 0, "memory_signature": sig},
              {"type": "log", "time": 2.0, "step": 1, "gpu_mem_peak_allocated": 9 << 30,
               "gpu_mem_peak_reserved": 10 << 30, "gpu_mem_nvml_used": 11 << 30}]
    (run / "events.jsonl").write_text("\n".join(json.dumps(e) for e in events))
    assert main(["estimate", "qlora-8b", "--gpu-memory", "24GiB"]) == 0
    out = capsys.readouterr().out
    assert "last measured" in out and "NVML used 11.00 GiB" in out and "allocated 9.00 GiB" in out


def test_gpus_without_gpu(capsys):
    assert main(["gpus"]) == 0
    assert "no GPU available" in capsys.readouterr().out
    assert main(["gpus", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["available"] is False
