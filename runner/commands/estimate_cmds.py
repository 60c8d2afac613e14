"""`tunedeck estimate FILE`: the memory breakdown and verdict; `tunedeck gpus`: what the GPU probe sees."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from runner.printable import printable

GiB = 1024**3
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
          "g": 1024**3, "gb": 1000**3, "gib": 1024**3, "t": 1024**4, "tb": 1000**4, "tib": 1024**4}


def register(sub: Any) -> None:
    p = sub.add_parser("estimate", help="estimate peak GPU memory of a preset and whether it fits",
                       description="Estimate the peak GPU memory per process of a preset, component by "
                       "component, compare it with the GPU and suggest changes.")
    p.add_argument("preset", metavar="FILE", help="preset file or name")
    p.add_argument("--gpu-memory", metavar="SIZE", type=parse_size,
                   help="memory per GPU to compare against, e.g. 24GiB, 80GB, 16G (default: free memory of the detected GPU)")
    p.add_argument("--gpus", metavar="N", type=_positive, help="train on N GPUs (sets launch.num_processes)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a value (TOML syntax), repeatable")
    p.add_argument("--json", action="store_true", help="print the estimate as JSON")
    p.add_argument("--simulate", action="store_true",
                   help="also run one training step of the exact model on fake tensors (no GPU, no weights; "
                   "seconds to a minute) and print its peak by phase beside the estimate; for an architecture "
                   "the estimator does not know, the simulation is the estimate")
    p.set_defaults(func=run_estimate)
    g = sub.add_parser("gpus", help="list the GPUs, their memory, load and processes",
                       description="Show what tunedeck's GPU probe sees (respects CUDA_VISIBLE_DEVICES).")
    g.add_argument("--json", action="store_true", help="print as JSON")
    g.set_defaults(func=run_gpus)


def parse_size(text: str) -> int:
    """'24GiB', '24 GB', '16G', '1.5TiB' or plain bytes; G/T alone mean GiB/TiB as nvidia-smi shows them."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _UNITS or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a memory size; write e.g. 24GiB, 80GB or 16G")
    return int(float(m.group(1)) * _UNITS[unit])


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def gib(n: float) -> str:
    return f"{n / GiB:.2f} GiB"


def run_estimate(args: argparse.Namespace) -> int:
    from runner import exits, presets
    from runner.estimate import EstimateError, UnknownModel, apply_changes, estimate_for, last_measured_peak
    from runner.gpu import probe

    overrides = list(args.overrides) + ([f"launch.num_processes={args.gpus}"] if args.gpus else [])
    loaded = presets.load(args.preset, overrides)
    if not loaded.ok or loaded.config is None:
        for problem in loaded.errors or loaded.problems:
            print(problem.format(), file=sys.stderr)
        return exits.USAGE
    config = loaded.config
    budget, against, gpu_count = args.gpu_memory, "", None
    if budget:
        against = f"{gib(budget)} per GPU (--gpu-memory)"
    report = probe()
    if report.available:
        gpu_count = len(report.gpus)
        if not budget:
            used = report.gpus[: max(1, config.launch.num_processes)]
            tightest = min(used, key=lambda g: g.free_bytes)
            budget = tightest.free_bytes
            against = f"GPU {tightest.index} ({tightest.name}): {gib(tightest.free_bytes)} free of {gib(tightest.total_bytes)}"
    simulated = None
    try:
        est = estimate_for(config, budget, gpu_count)  # with the data lengths `tunedeck data` measured
    except UnknownModel as exc:
        if not args.simulate:
            print(f"{printable(loaded.path, 240)}: error: cannot estimate: {printable(exc, 600)}", file=sys.stderr)
            return exits.USAGE
        est = None  # the simulation builds whatever transformers can build from the config
        analytic_error = str(exc)
    except EstimateError as exc:
        print(f"{printable(loaded.path, 240)}: error: cannot estimate: {printable(exc, 600)}", file=sys.stderr)
        return exits.USAGE
    if args.simulate:
        simulated = _simulate(config, loaded.path)
        if simulated is None:
            return exits.USAGE
    if est is None:
        return _print_simulation_only(printable(loaded.name), simulated, budget, against, analytic_error, args.json,
                                      report.reason if not report.available else "")
    from runner.runs_home import runs_dir

    measured = last_measured_peak(config, runs_dir(config=config))  # where this config's runs go
    if args.json:
        out = est.to_dict()
        out.update(against=against or None, last_measured=measured, simulated=simulated)
        print(json.dumps(out, indent=2))
    else:
        _print_estimate(printable(loaded.name), est, against, measured, report.reason if not report.available else "")
        if simulated:
            _print_simulation(est, simulated)
    for sug in est.suggestions:  # a suggestion that would not validate is a bug: fail loudly in tests
        apply_changes(config, sug.changes)
    return exits.FAILED if est.verdict == "does not fit" else exits.OK


def _simulate(config: Any, path: Any) -> dict | None:
    """The simulated step (runner.simulate in a subprocess), or None after printing why it failed."""
    from runner.simulate import SimulationError, run_subprocess

    try:
        return run_subprocess(config.model_dump(mode="json"))
    except SimulationError as exc:
        print(f"{printable(path, 240)}: error: cannot simulate: {printable(exc, 600)}", file=sys.stderr)
        return None


def _print_simulation(est: Any, sim: dict) -> None:
    """The simulated peak by phase beside the analytic one."""
    print(f"\nSimulated training step ({printable(sim['arch_source'])}, fake tensors, {sim['seconds']:.1f} s):")
    print(f"  {'phase':<15} {'analytic':>11} {'simulated':>11}")
    for phase, sim_bytes in sim["phases"].items():
        analytic = gib(est.phases[phase]) if est is not None and phase in est.phases else "-"
        mark = "  <- peak" if phase == sim["phase"] else ""
        print(f"  {phase:<15} {analytic:>11} {gib(sim_bytes):>11}{mark}")
    tensors = sim["tensor_peak_bytes"]
    split = sim.get("split", {}).get(sim["phase"]) or {}
    parts = ", ".join(f"{name} {gib(n)}" for name, n in split.items() if n > 0)
    print(f"  simulated tensors at the peak: {gib(tensors)}" + (f" (about: {parts})" if parts else ""))
    print("  + not visible to a simulation, from the analytic model: "
          + ", ".join(f"{name.replace(' (analytic)', '')} {gib(n)}" for name, n in sim["unseen"].items()))
    for note in sim.get("notes", []):
        print(f"  note: {printable(note)}")


def _print_simulation_only(name: str, sim: dict, budget: int | None, against: str, why: str, as_json: bool,
                           no_gpu: str) -> int:
    from runner import exits
    from runner.estimate import verdict

    result = verdict(sim["peak_bytes"], budget) if budget else None
    if as_json:
        print(json.dumps({"peak_bytes": sim["peak_bytes"], "phase": sim["phase"], "phases": sim["phases"],
                          "verdict": result, "against": against or None, "analytic": None,
                          "analytic_error": why, "simulated": sim}, indent=2))
    else:
        print(f"{name}: {sim['params_total']:,} parameters, {sim['params_trainable']:,} trainable "
              f"({printable(sim['model_type'])}, {printable(sim['arch_source'])})")
        print("the analytic estimator does not model this architecture; the simulation is the estimate")
        _print_simulation(None, sim)
        print()
        if result:
            print(f"{result.upper()}: {gib(sim['peak_bytes'])} against {against}")
        else:
            print(f"no budget to compare with ({no_gpu or 'no GPU detected'}); pass --gpu-memory, e.g. --gpu-memory 24GiB")
    return exits.FAILED if result == "does not fit" else exits.OK


def _print_estimate(name: str, est: Any, against: str, measured: dict | None, no_gpu: str) -> None:
    print(f"{name}: {est.params_total:,} parameters, {est.params_trainable:,} trainable "
          f"({100 * est.params_trainable / max(1, est.params_total):.2f}%)")
    print(f"architecture: {printable(est.arch_source, 200)}")
    print()
    width = max(len(c.name) for c in est.components)
    for c in est.components:
        band = "  (evictable)" if c.evictable else ""
        print(f"  {c.name:<{width}}  {gib(c.bytes):>11}  {c.detail}{band}")
    print(f"  {'-' * width}  {'-' * 11}")
    phases = ", ".join(f"{k} {gib(v)}" for k, v in est.phases.items())
    print(f"  {'peak per GPU':<{width}}  {gib(est.peak_bytes):>11}  at the {est.phase} ({phases})")
    for note in est.notes:
        print(f"  note: {printable(note, 400)}")
    if measured:
        parts = [f"{label} {gib(measured[key])}" for key, label in
                 (("peak_allocated", "allocated"), ("peak_reserved", "reserved"), ("nvml_used", "NVML used"))
                 if measured.get(key)]
        print(f"  last measured (same settings, {measured['run_dir']}): " + (", ".join(parts) or "no GPU figures"))
    print()
    if est.verdict:
        print(f"{est.verdict.upper()}: {gib(est.peak_bytes)} against {against}")
    else:
        print(f"no budget to compare with ({no_gpu or 'no GPU detected'}); pass --gpu-memory, e.g. --gpu-memory 24GiB")
    if est.suggestions:
        print("\nTo fit:" if est.suggestions[0].kind == "memory" else "\nMemory to spare; to train faster:")
        for i, sug in enumerate(est.suggestions, 1):
            mark = "fits" if sug.fits else "still too big"
            changes = ", ".join(f"{k}={json.dumps(v)}" for k, v in sug.changes.items())
            print(f"  {i}. {sug.title}: {gib(sug.peak_bytes)} ({mark})\n     set {changes}")


def run_gpus(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from runner.gpu import probe

    report = probe()
    if args.json:
        print(json.dumps(asdict(report), indent=2))
        return 0
    if not report.available:
        print(f"no GPU available: {report.reason}")
        return 0
    print(f"NVIDIA driver {report.driver or '?'}")
    for g in report.gpus:
        util = f"{g.utilization_percent}%" if g.utilization_percent is not None else "n/a"
        temp = f"{g.temperature_c} C" if g.temperature_c is not None else "n/a"
        power = f"{g.power_w:.0f} W" if g.power_w is not None else "n/a"
        print(f"GPU {g.index}: {g.name}  {gib(g.used_bytes)} used / {gib(g.total_bytes)} "
              f"({gib(g.free_bytes)} free)  util {util}  temp {temp}  power {power}")
        for proc in g.processes:
            used = gib(proc.used_bytes) if proc.used_bytes is not None else "n/a"
            print(f"    pid {proc.pid} {printable(proc.name)}: {used}")
    return 0
