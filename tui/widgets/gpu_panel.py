"""GPUs (memory used vs the estimate made at launch, utilisation, temperature, power) plus CPU and RAM.

The panel only draws; the monitor polls `runner.gpu.probe()` and psutil in a worker thread and
hands the readings over (`Readings`), so a slow driver never stalls the UI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual.widgets import Static

GIB = 1024**3


@dataclass
class Readings:
    gpus: list[Any] = field(default_factory=list)  # runner.gpu.GpuInfo
    gpu_reason: str = ""  # why there are none
    cpu_percent: float | None = None
    ram_used: int | None = None
    ram_total: int | None = None
    run_rss: int | None = None  # resident memory of the run's processes
    run_pids: frozenset[int] = frozenset()  # the run's processes and their children (to tell its GPU use apart)


def read_machine(probe: Any, run_pids: list[int]) -> Readings:
    """One reading (call from a worker thread): GPUs via the probe, CPU and RAM via psutil."""
    import psutil

    report = probe()
    vm = psutil.virtual_memory()
    procs: dict[int, Any] = {}  # each process once: the pids given and their descendants overlap
    for pid in run_pids:
        try:
            proc = psutil.Process(pid)
            procs[pid] = proc
            procs.update((c.pid, c) for c in proc.children(recursive=True))
        except psutil.Error:
            continue
    rss = 0
    for proc in procs.values():
        try:
            rss += proc.memory_info().rss
        except psutil.Error:
            continue
    return Readings(list(getattr(report, "gpus", []) if getattr(report, "available", False) else []),
                    getattr(report, "reason", ""), psutil.cpu_percent(interval=None), vm.used, vm.total,
                    rss or None, frozenset(procs))


def split_use(gpu: Any, run_pids: frozenset[int]) -> tuple[int | None, int, int]:
    """(bytes the run's processes use on this GPU or None if unknown, bytes and count of the others).

    NVML reports per-process memory on most hosts; inside some containers it does not (None)."""
    procs = list(getattr(gpu, "processes", []))
    mine = [p for p in procs if p.pid in run_pids]
    others = [p for p in procs if p.pid not in run_pids]
    run_bytes = sum(p.used_bytes for p in mine) if mine and all(p.used_bytes is not None for p in mine) else None
    return run_bytes, sum(p.used_bytes or 0 for p in others), len(others)


def meter(fraction: float, width: int = 10) -> str:
    filled = max(0, min(width, round(fraction * width)))
    return "█" * filled + "░" * (width - filled)


class GpuPanel(Static):
    HELP = """
## Machine
Per GPU: memory in use, the run's own share against the estimate made at launch (`run … est`),
what other processes hold, utilisation, temperature and power, refreshed every couple of seconds.
CPU and RAM below, with the run's own resident memory.
"""

    def show(self, readings: Readings, estimate_bytes: int | None) -> None:
        self.update(machine_text(readings, estimate_bytes))


def machine_text(readings: Readings, estimate_bytes: int | None) -> Text:
    """What the panel shows for one reading."""
    text = Text(no_wrap=True, overflow="ellipsis")
    if not readings.gpus:
        text.append("No GPU", style="bold")
        if readings.gpu_reason:
            text.append(f": {readings.gpu_reason}", style="dim")
        text.append("\n")
    for g in readings.gpus:
        fraction = g.used_bytes / g.total_bytes if g.total_bytes else 0.0
        mine, others_bytes, others = split_use(g, readings.run_pids)
        compared = mine if mine is not None else g.used_bytes  # the run's own use when NVML says it
        over = estimate_bytes is not None and compared > estimate_bytes * 1.1
        text.append(f"GPU{g.index} ", style="bold")
        text.append(f"{g.name}\n", style="dim")
        text.append(meter(fraction), style="red" if fraction > 0.95 else "green")
        text.append(f" {g.used_bytes / GIB:.1f}/{g.total_bytes / GIB:.0f} GiB")
        if mine is not None:
            text.append(f" run {mine / GIB:.1f}")
        if estimate_bytes is not None:
            text.append(f" est {estimate_bytes / GIB:.1f}", style="yellow" if over else "dim")
        text.append("\n  ")
        text.append(f"util {g.utilization_percent}%  " if g.utilization_percent is not None else "util -  ")
        text.append(f"{g.temperature_c}°C  " if g.temperature_c is not None else "")
        text.append(f"{g.power_w:.0f} W" if g.power_w is not None else "")
        if others:
            text.append(f"  others {others_bytes / GIB:.1f} GiB/{others} proc", style="dim")
        text.append("\n")
    if readings.cpu_percent is not None:
        text.append("CPU ", style="bold")
        text.append(meter(readings.cpu_percent / 100))
        text.append(f" {readings.cpu_percent:.0f}%\n")
    if readings.ram_total:
        text.append("RAM ", style="bold")
        text.append(meter((readings.ram_used or 0) / readings.ram_total))
        text.append(f" {(readings.ram_used or 0) / GIB:.1f}/{readings.ram_total / GIB:.0f} GiB")
        if readings.run_rss:
            text.append(f"  run {readings.run_rss / GIB:.2f} GiB", style="dim")
    return text
