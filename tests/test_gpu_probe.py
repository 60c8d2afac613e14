"""The GPU probe: degrades on a machine without NVIDIA GPUs, and reads a (fake) multi-GPU NVML."""

from __future__ import annotations

import sys
import threading
import types
from collections import namedtuple

import pytest

from runner import gpu

Mem = namedtuple("Mem", "total free used")
Util = namedtuple("Util", "gpu memory")
Proc = namedtuple("Proc", "pid usedGpuMemory")


class NVMLError(Exception):
    pass


def fake_nvml(n_gpus: int = 4, fail_power_on: int | None = None) -> types.ModuleType:
    """A stand-in for pynvml on a box with `n_gpus` GPUs (the only mock: there is no GPU here)."""
    mod = types.ModuleType("pynvml")
    mod.calls = {"init": 0, "count": 0}
    mod.NVML_TEMPERATURE_GPU = 0

    def init():
        mod.calls["init"] += 1

    def count():
        mod.calls["count"] += 1
        return n_gpus

    def power(h):
        if h == fail_power_on:
            raise NVMLError("Not Supported")
        return 250_000 + h * 1000

    mod.nvmlInit = init
    mod.nvmlShutdown = lambda: None
    mod.nvmlDeviceGetCount = count
    mod.nvmlSystemGetDriverVersion = lambda: b"550.54"
    mod.nvmlDeviceGetHandleByIndex = lambda i: i
    mod.nvmlDeviceGetUUID = lambda h: f"GPU-{h}aaa-uuid"
    mod.nvmlDeviceGetName = lambda h: "NVIDIA H100 80GB HBM3"
    mod.nvmlDeviceGetMemoryInfo = lambda h: Mem(80 << 30, (80 - 10 * h) << 30, (10 * h) << 30)
    mod.nvmlDeviceGetUtilizationRates = lambda h: Util(10 * h, 5)
    mod.nvmlDeviceGetTemperature = lambda h, sensor: 40 + h
    mod.nvmlDeviceGetPowerUsage = power
    mod.nvmlDeviceGetComputeRunningProcesses = lambda h: [Proc(1, 5 << 30)] if h == 1 else []

    def graphics(h):
        raise NVMLError("Not Supported")

    mod.nvmlDeviceGetGraphicsRunningProcesses = graphics
    return mod


@pytest.fixture
def nvml(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake = fake_nvml(fail_power_on=2)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    gpu.reset()
    yield fake
    gpu.reset()


def test_no_gpu_here_degrades_without_raising(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gpu.reset()
    report = gpu.probe()
    gpu.reset()
    try:
        import pynvml

        pynvml.nvmlInit()
        pytest.skip("this machine has an NVIDIA driver")
    except Exception:
        pass
    assert report.available is False and report.gpus == [] and report.reason


def test_missing_library_degrades(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    gpu.reset()
    report = gpu.probe()
    gpu.reset()
    assert not report.available and "nvidia-ml-py" in report.reason


def test_init_failure_degrades(monkeypatch):
    fake = fake_nvml()

    def broken():
        raise NVMLError("Driver Not Loaded")

    fake.nvmlInit = broken
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    gpu.reset()
    report = gpu.probe()
    gpu.reset()
    assert not report.available and "Driver Not Loaded" in report.reason


def test_multi_gpu_box(nvml):
    report = gpu.probe()
    assert report.available and report.driver == "550.54"
    assert [g.index for g in report.gpus] == [0, 1, 2, 3]
    g1 = report.gpus[1]
    assert (g1.total_bytes, g1.free_bytes, g1.used_bytes) == (80 << 30, 70 << 30, 10 << 30)
    assert (g1.utilization_percent, g1.temperature_c, g1.power_w) == (10, 41, 251.0)
    assert [(p.pid, p.used_bytes) for p in g1.processes] == [(1, 5 << 30)]
    assert g1.processes[0].name  # pid 1 exists on Linux
    assert report.gpus[2].power_w is None  # "Not Supported" becomes unknown, not an exception
    assert report.gpus[0].processes == []


def test_cuda_visible_devices_order_and_uuid(nvml, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    report = gpu.probe()
    assert [(g.index, g.uuid) for g in report.gpus] == [(0, "GPU-3aaa-uuid"), (1, "GPU-1aaa-uuid")]
    assert report.gpus[0].free_bytes == 50 << 30
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-2aaa")
    assert [g.uuid for g in gpu.probe().gpus] == ["GPU-2aaa-uuid"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,7,1")  # CUDA stops at the first invalid entry
    assert len(gpu.probe().gpus) == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    report = gpu.probe()
    assert not report.available and "CUDA_VISIBLE_DEVICES" in report.reason


def test_initialised_once_and_cached(nvml):
    gpu.probe()
    gpu.probe()
    assert nvml.calls == {"init": 1, "count": 1}
    gpu.probe(max_age=0)
    assert nvml.calls == {"init": 1, "count": 2}


def test_safe_from_threads(nvml):
    results, errors = [], []

    def worker():
        try:
            for _ in range(20):
                results.append(gpu.probe(max_age=0).available)
        except Exception as exc:  # pragma: no cover - a failure is what this test looks for
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and all(results) and len(results) == 80
    assert nvml.calls["init"] == 1
