"""What the GPUs on this machine are doing, through NVML (nvidia-ml-py), never through torch.

`probe()` initialises NVML lazily once, caches the answer for a short time and is safe to call from
a worker thread. No driver, no library, no GPU or an unsupported query gives "not available"
values instead of an exception. CUDA_VISIBLE_DEVICES is respected: only visible GPUs are listed, in
the order (and with the indices) CUDA numbers them.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

CACHE_SECONDS = 2.0  # a probe is cheap but the TUI polls it; keep answers this long


@dataclass
class GpuProcess:
    pid: int
    name: str
    used_bytes: int | None  # None when the driver does not report it (e.g. inside containers)


@dataclass
class GpuInfo:
    index: int  # as CUDA numbers it under CUDA_VISIBLE_DEVICES
    name: str
    total_bytes: int
    free_bytes: int
    used_bytes: int
    utilization_percent: int | None = None
    temperature_c: int | None = None
    power_w: float | None = None
    processes: list[GpuProcess] = field(default_factory=list)
    uuid: str = ""


@dataclass
class GpuReport:
    available: bool
    reason: str  # why not, when not available; "" otherwise
    driver: str | None = None
    gpus: list[GpuInfo] = field(default_factory=list)


_lock = threading.Lock()
_state: dict[str, Any] = {"nvml": None, "init_error": None, "cached": None, "at": 0.0, "key": None}


def probe(max_age: float = CACHE_SECONDS) -> GpuReport:
    """The GPUs this process may use, at most `max_age` seconds old."""
    key = os.environ.get("CUDA_VISIBLE_DEVICES")
    with _lock:
        cached = _state["cached"]
        if cached is not None and _state["key"] == key and time.monotonic() - _state["at"] < max_age:
            return cached
        report = _probe_now(key)
        _state.update(cached=report, at=time.monotonic(), key=key)
        return report


def reset() -> None:
    """Forget the cached answer and the NVML handle (tests swap NVML implementations)."""
    with _lock:
        nvml = _state["nvml"]
        if nvml is not None:
            _quiet(nvml.nvmlShutdown)
        _state.update(nvml=None, init_error=None, cached=None, at=0.0, key=None)


def _load_nvml() -> Any:
    """The initialised pynvml module, or None with the reason kept in _state."""
    if _state["nvml"] is not None or _state["init_error"] is not None:
        return _state["nvml"]
    try:
        import pynvml
    except ImportError:
        _state["init_error"] = "nvidia-ml-py (pynvml) is not installed"
        return None
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        _state["init_error"] = f"no NVIDIA driver or GPU ({_reason(exc)})"
        return None
    _state["nvml"] = pynvml
    return pynvml


def _probe_now(visible: str | None) -> GpuReport:
    nvml = _load_nvml()
    if nvml is None:
        return GpuReport(False, _state["init_error"] or "not available")
    try:
        count = nvml.nvmlDeviceGetCount()
    except Exception as exc:
        return GpuReport(False, f"cannot count GPUs ({_reason(exc)})")
    driver = _quiet(nvml.nvmlSystemGetDriverVersion)
    if isinstance(driver, bytes):
        driver = driver.decode()
    handles = []
    for i in range(count):
        handle = _quiet(nvml.nvmlDeviceGetHandleByIndex, i)
        if handle is not None:
            handles.append((i, handle, _text(_quiet(nvml.nvmlDeviceGetUUID, handle)) or ""))
    selected = _visible(handles, visible)
    if not selected:
        why = "no GPU found" if not handles else f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU"
        return GpuReport(False, why, driver)
    gpus = [_info(nvml, cuda_index, handle, uuid) for cuda_index, (handle, uuid) in enumerate(selected)]
    return GpuReport(True, "", driver, gpus)


def _visible(handles: list[tuple[int, Any, str]], visible: str | None) -> list[tuple[Any, str]]:
    """The devices CUDA would expose, in CUDA's order (indices or UUID prefixes; stops at the first invalid)."""
    if visible is None:
        return [(h, u) for _, h, u in handles]
    out = []
    for item in (part.strip() for part in visible.split(",")):
        if not item:
            break
        match = None
        if item.lstrip("-").isdigit():
            n = int(item)
            match = next(((h, u) for i, h, u in handles if i == n), None)
        else:
            match = next(((h, u) for _, h, u in handles if u and u.startswith(item)), None)
        if match is None:
            break  # CUDA ignores everything from the first invalid entry on
        out.append(match)
    return out


def _info(nvml: Any, index: int, handle: Any, uuid: str) -> GpuInfo:
    mem = _quiet(nvml.nvmlDeviceGetMemoryInfo, handle)
    util = _quiet(nvml.nvmlDeviceGetUtilizationRates, handle)
    temp = _quiet(nvml.nvmlDeviceGetTemperature, handle, getattr(nvml, "NVML_TEMPERATURE_GPU", 0))
    power = _quiet(nvml.nvmlDeviceGetPowerUsage, handle)  # milliwatts
    return GpuInfo(
        index=index,
        name=_text(_quiet(nvml.nvmlDeviceGetName, handle)) or "unknown GPU",
        total_bytes=int(getattr(mem, "total", 0) or 0),
        free_bytes=int(getattr(mem, "free", 0) or 0),
        used_bytes=int(getattr(mem, "used", 0) or 0),
        utilization_percent=int(util.gpu) if util is not None else None,
        temperature_c=int(temp) if temp is not None else None,
        power_w=power / 1000.0 if power is not None else None,
        processes=_processes(nvml, handle),
        uuid=uuid,
    )


def _processes(nvml: Any, handle: Any) -> list[GpuProcess]:
    seen: dict[int, GpuProcess] = {}
    for query in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        fn: Callable[..., Any] | None = getattr(nvml, query, None)
        for proc in (_quiet(fn, handle) if fn else None) or []:
            pid = int(getattr(proc, "pid", 0))
            used = getattr(proc, "usedGpuMemory", None)
            if pid not in seen:
                seen[pid] = GpuProcess(pid, _process_name(pid), int(used) if isinstance(used, int) else None)
    return list(seen.values())


def _process_name(pid: int) -> str:
    try:
        import psutil

        return psutil.Process(pid).name()
    except Exception:  # gone, or another user's process in a container
        return "?"


def _quiet(fn: Callable[..., Any], *args: Any) -> Any:
    """Call an NVML query; None when the GPU or driver does not support it."""
    try:
        return fn(*args)
    except Exception:
        return None


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
