"""Why did a run fail, and what should the user try? Classification from exceptions or log text.

No torch import: the trainer calls `diagnose_exception`, the supervisor and the registry call
`diagnose_text` on a log tail or an exit code. Suggestions paraphrase the common remedies in
the project's reference notes (instability: lower learning rate, more warmup, gradient clipping).
Out of memory with the run's config known, the suggestion is the estimator's own list of remedies
(`memory_remedies`, from runner.estimate): the memory gauge and the monitor show the same list.
The fixed "oom" text below is only for a failure whose config cannot be read or sized.
"""

from __future__ import annotations

import json
import re
import signal
import traceback
from dataclasses import dataclass
from typing import Any

REASONS = ("oom", "nan_loss", "disk_full", "data_error", "model_not_found", "missing_dependency", "killed",
           "config_error", "error")

SUGGESTIONS = {
    "oom": "Out of memory: lower training.per_device_train_batch_size and raise "
    "training.gradient_accumulation_steps to keep the effective batch, turn on "
    "training.gradient_checkpointing, shorten data.max_seq_length, use an 8-bit optimizer "
    "(training.optim = \"paged_adamw_8bit\"), or load the model in 4-bit with LoRA "
    "(quantization.load_in_4bit + lora.enabled).",
    "nan_loss": "The loss became NaN or infinite: lower training.learning_rate, raise "
    "training.warmup_steps, keep gradient clipping on (training.max_grad_norm = 1.0), and prefer "
    "bf16 over fp16 if your GPU supports it.",
    "data_error": "Check data.path (and data.eval_path), the file format (.jsonl/.json/.csv/"
    ".parquet) and that the columns named in the [data] section exist for data.format.",
    "model_not_found": "Check model.name_or_path: a local directory needs config.json and the "
    "weights; a Hub id must be spelt org/name, be reachable, and gated models need HF_TOKEN "
    "in the environment.",
    "missing_dependency": "Install the missing package into the same environment "
    "(e.g. pip install 'tunedeck[quant]' for bitsandbytes); 4-bit and 8-bit loading also need an "
    "NVIDIA GPU with CUDA.",
    "killed": "The process was killed from outside (often the kernel's out-of-memory killer when "
    "host RAM runs out, or a scheduler's time limit). Check `dmesg` and lower memory use; "
    "resume with `tunedeck resume RUN` from the last checkpoint.",
    "disk_full": "The disk is full: free space there (old runs' checkpoints/ are the usual bulk), lower "
    "training.save_total_limit, or put runs on a larger disk (--runs-dir, $TUNEDECK_RUNS_DIR or "
    "training.output_dir), then `tunedeck resume RUN` from the last complete checkpoint.",
    "config_error": "Fix the config shown above; `tunedeck validate FILE` lists every problem.",
    "error": "Read the traceback at the end of output.log (`tunedeck logs RUN`).",
}


class RunError(Exception):
    """A failure the trainer understands; `reason` is one of REASONS."""

    reason = "error"


class DataError(RunError):
    reason = "data_error"


class ModelNotFound(RunError):
    reason = "model_not_found"


class MissingDependency(RunError):
    reason = "missing_dependency"


class NonFiniteLoss(RunError):
    reason = "nan_loss"


@dataclass(frozen=True)
class Diagnosis:
    reason: str
    message: str  # one line
    suggestion: str


# (reason, pattern) in priority order; matched against "ExceptionType: message" and log tails.
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (reason, re.compile(pattern, re.IGNORECASE))
    for reason, pattern in (
        ("nan_loss", r"NonFiniteLoss|loss (is|became) (nan|inf)"),
        # Before oom: "cannot allocate" never appears in these, and a full disk is no memory problem.
        ("disk_full", r"No space left on device|StorageFull|Disk quota exceeded|\[Errno 28\]|"
                      r"PytorchStreamWriter failed writing file|file write failed"),
        ("oom", r"OutOfMemoryError|CUDA out of memory|out of memory|can't allocate memory|"
                r"DefaultCPUAllocator|\bMemoryError\b"),
        ("missing_dependency", r"MissingDependency|ModuleNotFoundError|No module named|"
                               r"requires the .*(library|package)|bitsandbytes|"
                               r"Install .* with .*pip install|PackageNotFoundError"),
        ("model_not_found", r"ModelNotFound|is not a valid model identifier|Repository Not Found|"
                            r"does not appear to have a file named|RepositoryNotFoundError|"
                            r"LocalEntryNotFoundError|Can't load (the )?(config|tokenizer)"),
        ("data_error", r"DataError|DatasetNotFoundError|missing column|Couldn't find a dataset|"
                       r"Unable to find .*(data|json|csv|parquet)|ArrowInvalid|JSONDecodeError|"
                       r"DatasetGenerationError"),
        ("config_error", r"ConfigError"),
    )
)


def classify_text(text: str) -> str:
    for reason, pattern in _PATTERNS:
        if pattern.search(text):
            return reason
    return "error"


def diagnose_exception(exc: BaseException, run_path: str | None = None, config: Any = None,
                       gpu_count: int | None = None) -> Diagnosis:
    """`run_path`: where a full disk is reported ("no space left on the device of PATH (N free)");
    `config` (and `gpu_count`, the GPUs the run saw): what an out-of-memory suggestion is computed for."""
    described = _describe(exc)
    cause = exc.__cause__ or exc.__context__
    if cause is not None:
        described += f" (caused by {_describe(cause)})"
    reason = exc.reason if isinstance(exc, RunError) else classify_text(described)
    message = described
    if reason == "disk_full":
        from runner.rundir import disk_full_message

        where = getattr(exc, "filename", None) or getattr(cause, "filename", None) or run_path
        message = disk_full_message(where) + f": {described}" if where else described
    return Diagnosis(reason, one_line(message), _suggestion(reason, config, described, gpu_count))


def diagnose_text(log_tail: str, exit_code: int | None = None, run_path: str | None = None,
                  config: Any = None) -> Diagnosis:
    """For a process that died without reporting: guess from its exit code and last output."""
    signum = signal_of(exit_code) or signal_in_text(log_tail)
    if signum in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        reason = classify_text(log_tail)
        if reason != "oom":
            reason = "killed"
        message = f"killed by {signal.Signals(signum).name}"
    else:
        reason = classify_text(log_tail)
        message = last_error_line(log_tail) or (f"exited with code {exit_code}" if exit_code is not None
                                                 else "the training process is gone")
        if reason == "disk_full" and run_path:
            from runner.rundir import disk_full_message

            message = f"{disk_full_message(run_path)}: {message}"
    return Diagnosis(reason, one_line(message), _suggestion(reason, config, log_tail))


# --- out of memory: the estimator's remedies --------------------------------------------------------------
_CAPACITY = re.compile(r"total capacity of ([\d.]+) (GiB|MiB)")


def memory_capacity(text: str) -> int | None:
    """The device memory an out-of-memory error names (torch: "GPU 0 has a total capacity of 79.15 GiB")."""
    found = _CAPACITY.findall(text)
    if not found:
        return None
    number, unit = found[-1]
    return int(float(number) * (2**30 if unit == "GiB" else 2**20))


def memory_remedies(config: Any, message: str, gpu_count: int | None = None, budget_bytes: int | None = None) -> list:
    """runner.estimate.remedies for a run of `config` that ran out of memory: against the capacity the
    error names, else `budget_bytes` (e.g. the peak measured before it died), else below the estimated
    peak. `gpu_count` None: one GPU when the message is CUDA's, none otherwise. [] when the model
    cannot be sized offline."""
    from runner.estimate import EstimateError, remedies

    if gpu_count is None:
        gpu_count = 1 if "CUDA" in message else 0
    try:
        return remedies(config, memory_capacity(message) or budget_bytes, gpu_count, out_of_memory=True)
    except EstimateError:
        return []


def memory_advice(suggestions: list) -> str:
    """The remedies as one line for status.json and the terminal, each with the `--set` edits it makes."""
    # json spells true/false, numbers and quoted strings the way TOML (and so `--set`) reads them
    parts = [f"{s.title} ({', '.join(f'{k}={json.dumps(v)}' for k, v in s.changes.items())})"
             for s in suggestions[:MAX_ADVICE]]
    return "Out of memory; try: " + "; or ".join(parts) + "."


MAX_ADVICE = 3  # remedies named in the one-line suggestion (the monitor lists every one)


def _suggestion(reason: str, config: Any, text: str, gpu_count: int | None = None) -> str:
    if reason == "oom" and config is not None:
        found = memory_remedies(config, text, gpu_count)
        if found:
            return memory_advice(found)
    return SUGGESTIONS[reason]


def signal_of(exit_code: int | None) -> int | None:
    """Popen gives -N for death by signal N; shells and torchrun report 128+N."""
    if exit_code is None:
        return None
    if exit_code < 0:
        return -exit_code
    if 128 < exit_code < 160:
        return exit_code - 128
    return None


def signal_in_text(text: str) -> int | None:
    """A worker's death by signal as accelerate ("died with <Signals.SIGKILL: 9>") or torchrun report it."""
    found = None
    for m in re.finditer(r"died with <Signals\.(SIG[A-Z]+)|Signal \d+ \((SIG[A-Z]+)\) received", text):
        found = m.group(1) or m.group(2)
    try:
        return int(signal.Signals[found]) if found else None
    except KeyError:
        return None


def traceback_tail(exc: BaseException, lines: int = 12) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return "\n".join(text.rstrip().splitlines()[-lines:])


def last_error_line(text: str) -> str:
    """The last line that looks like `SomethingError: message` (a traceback's last line)."""
    for line in reversed(text.splitlines()):
        if re.match(r"\s*[\w.]*(Error|Exception|Interrupt|Exit)\b.*:", line):
            return line.strip()
    return ""


def one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
