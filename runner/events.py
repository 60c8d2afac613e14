"""events.jsonl: the machine-readable record of a run (the TUI's input besides output.log).

One JSON object per line, appended and flushed as it happens; only rank 0 writes. Every
event has ``type`` (str), ``time`` (unix seconds, float) and ``step`` (optimizer steps done,
int). Keys beyond these, per type (absent keys mean "unknown / not applicable"; all memory
figures are bytes; gpu_* keys are omitted on CPU):

``run_started``
    config_digest, preset, resumed_from (checkpoint dir name or null), start_step,
    total_steps, num_train_examples, num_eval_examples, packed_rows (rows after packing, or null),
    world_size, effective_batch_size,
    params_total, params_trainable, trainable_percent, estimated_memory (dict from
    runner.estimate or null), memory_signature (str or null),
    device: {type: "cpu"|"cuda", name, count, torch, transformers, peft, cuda (version or null)}
``rank_ready``
    written by every rank (the one exception to "rank 0 only") just after run_started:
    rank, local_rank, world_size, host, node (the SLURM node name, or null)
``log``
    loss, learning_rate, grad_norm, epoch, total_steps, progress (0..1), tokens_per_s (real,
    non-padding tokens), samples_per_s, elapsed_s (wall seconds since this launch's training
    loop began), cpu_s (CPU seconds rank 0's process used in that time), eta_s,
    tokens_seen (real tokens so far in this launch), gpu_mem_allocated, gpu_mem_reserved,
    gpu_mem_peak_allocated, gpu_mem_peak_reserved, gpu_mem_nvml_used
``eval``
    eval_loss, perplexity (exp(eval_loss), null on overflow), epoch, plus any other eval_* metric
``checkpoint``
    path (absolute), name ("checkpoint-<step>")
``sample``
    prompt, completion, max_new_tokens, temperature, top_p, top_k, do_sample, when ("eval"|"end")
``warning``
    message, code ("data": examples dropped, "model": a setting the model cannot use,
    "no_eval_data": evaluation asked for without eval data)
``run_finished``
    reason ("completed" | "early_stopping"), final_path, merged_path (or null),
    train_loss, total_steps, elapsed_s, gpu_mem_* as in ``log``
``run_stopped``
    reason ("stop requested (SIGTERM)" from the trainer; "stop requested" / "killed after the grace
    period" when written by the supervisor or `tunedeck stop` because the trainer could not),
    checkpoint (path or null), elapsed_s (trainer only)
``run_failed``
    reason (one of runner.diagnose.REASONS: "oom", "nan_loss", "disk_full", "data_error", "model_not_found",
    "missing_dependency", "killed", "config_error", "error"), message (one line),
    suggestion (what to try), traceback_tail (last lines of the traceback or of output.log, str),
    elapsed_s (absent when the supervisor reports a trainer that died without a word)

Terminal events are exactly one of run_finished / run_stopped / run_failed per launch; a
resumed run appends a new run_started (with resumed_from) to the same file.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

EVENT_TYPES = (
    "run_started", "rank_ready", "log", "eval", "checkpoint", "sample", "warning",
    "run_finished", "run_stopped", "run_failed",
)
TERMINAL_TYPES = ("run_finished", "run_stopped", "run_failed")


class EventWriter:
    """Appends events to events.jsonl; a no-op when `enabled` is False (ranks other than 0)."""

    def __init__(self, path: str | os.PathLike[str], enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled

    def emit(self, type: str, step: int = 0, **fields: Any) -> dict[str, Any]:
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}")
        event = {"type": type, "time": time.time(), "step": int(step), **fields}
        if self.enabled:
            line = json.dumps(event, default=_jsonable, allow_nan=False) + "\n"
            # One write() of one line on an O_APPEND file: readers never see two events interleaved.
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
        return event


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    return str(value)


def sanitize(value: float | None) -> float | None:
    """NaN and infinities are not JSON: map them to None (callers report them as warnings)."""
    if value is None:
        return None
    value = float(value)
    return value if value == value and value not in (float("inf"), float("-inf")) else None


def read_events(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every complete event in the file; a half-written last line or a corrupt line is skipped."""
    tail = EventTail(path)
    return tail.poll()


class EventTail:
    """Incremental reader: each `poll()` returns the complete events appended since the previous poll.

    The one reader of events.jsonl that the CLI (`run`, `resume`), the monitor (tui.run_watch) and
    the runs screen share. `limit` bounds the bytes read per poll (`more` then says whether the file
    holds more); `contains` skips, before parsing, lines without that byte string (the runs screen
    wants only evaluations out of a long run's events).
    """

    def __init__(self, path: str | os.PathLike[str], from_end: bool = False, contains: bytes | None = None):
        """`from_end`: skip what the file already holds (e.g. the earlier launches of a resumed run)."""
        self.path = Path(path)
        self.offset = self.path.stat().st_size if from_end and self.path.exists() else 0
        self.contains = contains
        self.more = False  # the last poll stopped at `limit` with more in the file
        self._partial = b""

    def poll(self, limit: int | None = None) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read() if limit is None else handle.read(limit)
        except FileNotFoundError:
            self.more = False
            return []
        self.more = limit is not None and len(data) == limit
        self.offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()  # b"" after a complete line; otherwise an unfinished line
        return parse_lines(lines, self.contains)


def parse_lines(lines: list[bytes], contains: bytes | None = None) -> list[dict[str, Any]]:
    """The events among JSONL lines; blank, corrupt and non-event lines are skipped."""
    lines = [line for line in lines if line.strip() and (contains is None or contains in line)]
    if not lines:
        return []
    try:
        # One parse for the whole batch: much faster than a json.loads call per line.
        parsed = json.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:
        parsed = []
        for line in lines:
            try:
                parsed.append(json.loads(line))
            except ValueError:
                continue  # a corrupt or half-written line
    return [e for e in parsed if isinstance(e, dict) and "type" in e]


def newest_events(path: str | os.PathLike[str], max_bytes: int = 256_000) -> list[dict[str, Any]]:
    """The complete events in the last `max_bytes` of the file, oldest first: what a listing needs
    (latest step, loss, total) without reading a long run's whole history."""
    from runner.rundir import read_tail

    data, cut = read_tail(path, max_bytes)
    lines = data.split(b"\n")
    if cut:
        lines = lines[1:]  # most likely the second half of a line
    if lines and not data.endswith(b"\n"):
        lines.pop()  # being written right now
    return parse_lines(lines)


def last_step(path: str | os.PathLike[str]) -> int:
    """The step of the newest event (0 for a run with none yet)."""
    for event in reversed(newest_events(path, 64_000)):
        step = event.get("step")
        if isinstance(step, (int, float)) and step == step:
            return int(step)
    return 0


def follow(path: str | os.PathLike[str], interval: float = 0.5, until_terminal: bool = True,
           timeout: float | None = None) -> Iterator[dict[str, Any]]:
    """Yield events as they are appended; stops after a terminal event (or after `timeout` s)."""
    tail = EventTail(path)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        for event in tail.poll():
            yield event
            if until_terminal and event["type"] in TERMINAL_TYPES:
                return
        if deadline is not None and time.monotonic() > deadline:
            return
        time.sleep(interval)
