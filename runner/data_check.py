"""The data check before launch: every source exists, every row parses and has what data.format needs.

No tokenizer, no torch, no `datasets`: it reads local files with the standard library (pyarrow for
parquet) and checks each row with the renderer's own row checks (runner.prompts.check_row), so what
passes here renders in training. Problems name the file and line (JSON Lines, CSV) or row (JSON,
parquet) and the field. A Hub dataset id is looked up when the Hub is reachable and otherwise reported
as not checked, never as an error.

`tunedeck validate --here`, `tunedeck run` (before any run directory exists), the editor's launch
dialog and the trainer itself call `check(config)`.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from runner.problems import Problem
from runner.prompts import RowError, check_row
from runner.demo_spec import DEMO_DATA, demo_data_file

LOCAL_SUFFIXES = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
MAX_REPORTED = 5  # bad rows listed per source; the rest are counted
HUB_TIMEOUT_S = 5.0


@dataclass
class Source:
    """One dataset to read: where, and the [data] settings that apply to it (mixture overrides applied)."""

    label: str  # "data.path", "data.eval_path" or "data.datasets[2]"
    data: Any  # a DataSection
    max_samples: int = 0
    weight: float = 1.0


def sources(config, *, eval_data: bool = False) -> list[Source]:
    """The training sources (the mixture, else data.path) or, with eval_data, data.eval_path's."""
    d = config.data
    if eval_data:
        return [Source("data.eval_path", d.model_copy(update={"path": d.eval_path}))] if d.eval_path else []
    if not d.datasets:
        return [Source("data.path", d, d.max_samples)]
    out = []
    for i, entry in enumerate(d.datasets, start=1):
        overrides = {k: v for k, v in entry.model_dump().items() if k not in ("max_samples", "weight") and v}
        out.append(Source(f"data.datasets[{i}]", d.model_copy(update={**overrides, "datasets": []}),
                          entry.max_samples or d.max_samples, entry.weight))
    return out


def local_path(path: str) -> Path | None:
    """The local file or directory a data path names (relative to the working directory, as the trainer
    reads it), or None for what can only be a Hub dataset id."""
    if path == DEMO_DATA:
        return demo_data_file()
    local = Path(os.path.expanduser(path))
    if local.exists() or path.startswith((".", "/", "~")) or local.suffix.lower() in LOCAL_SUFFIXES:
        return local
    if path.count("/") != 1:  # a Hub id is "name" or "org/name"; anything deeper is a local path
        return local if "/" in path else None
    return None


def data_files(path: Path) -> tuple[str, list[Path]]:
    """(loader kind, files) of a local file or directory; ValueError says what is wrong."""
    if path.is_file():
        kind = LOCAL_SUFFIXES.get(path.suffix.lower())
        if kind is None:
            raise ValueError(f"{path} is not a .jsonl/.json/.csv/.parquet file")
        return kind, [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in LOCAL_SUFFIXES)
        if not files:
            raise ValueError(f"directory {path} holds no .jsonl/.json/.csv/.parquet files")
        kinds = {LOCAL_SUFFIXES[p.suffix.lower()] for p in files}
        if len(kinds) > 1:
            raise ValueError(f"directory {path} mixes file types {sorted(kinds)}; keep one kind")
        return kinds.pop(), files
    raise FileNotFoundError(f"no such file or directory: {path}")


# --- reading rows with their line numbers --------------------------------------------------------------
class BadRow(Exception):
    def __init__(self, line: int | None, message: str):
        super().__init__(message)
        self.line = line


def rows_of(path: Path) -> Iterator[tuple[int | None, int, Any]]:
    """(line or None, row number, row) for every row of one local file; BadRow for a row that does not parse."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl" or (suffix == ".json" and _looks_like_json_lines(path)):
        with path.open("rb") as handle:
            number = 0
            for line_no, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                number += 1
                try:
                    row = json.loads(raw)
                except (ValueError, UnicodeDecodeError) as exc:
                    yield line_no, number, BadRow(line_no, f"not valid JSON: {_json_reason(exc)}")
                    continue
                yield line_no, number, row
    elif suffix == ".json":
        try:
            document = json.loads(path.read_bytes())
        except (ValueError, UnicodeDecodeError) as exc:
            line = getattr(exc, "lineno", None)
            yield line, 1, BadRow(line, f"not valid JSON: {_json_reason(exc)}")
            return
        if not isinstance(document, list):
            yield 1, 1, BadRow(1, "a .json file must hold a list of objects (one per example), or be JSON Lines")
            return
        for number, row in enumerate(document, start=1):
            yield None, number, row
    elif suffix == ".csv":
        with path.open(newline="", encoding="utf-8", errors="replace") as handle:
            reader = csv.DictReader(handle)
            number = 0
            for row in reader:
                number += 1
                yield reader.line_num, number, row
    else:  # parquet
        import pyarrow.parquet as pq

        try:
            table = pq.ParquetFile(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow's errors: the file is not parquet
            yield None, 1, BadRow(None, f"not a readable parquet file: {exc}")
            return
        number = 0
        for batch in table.iter_batches(batch_size=4096):
            for row in batch.to_pylist():
                number += 1
                yield None, number, row


def _looks_like_json_lines(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(64).lstrip()
    return head.startswith(b"{")


def _json_reason(exc: Exception) -> str:
    return getattr(exc, "msg", None) or str(exc).split(":")[0]


# --- the check ----------------------------------------------------------------------------------------
@dataclass
class SourceReport:
    label: str
    path: str
    rows: int = 0  # rows read (all of them, before max_samples)
    bad: int = 0
    checked: bool = True  # False: a Hub id that could not be looked up
    note: str = ""
    problems: list[Problem] = field(default_factory=list)


def check_source(source: Source) -> SourceReport:
    d = source.data
    report = SourceReport(source.label, d.path)
    key = "data.eval_path" if source.label == "data.eval_path" else "data.datasets" if "[" in source.label else "data.path"
    where = f"{source.label} ({d.path}): " if source.label != key else ""  # the key is printed anyway

    def problem(message: str, file: str | None = None, line: int | None = None, hint: str = "") -> None:
        report.problems.append(Problem("error", message, key=key, file=file, line=line, hint=hint))

    if not d.path.strip():
        problem(f"{where}no dataset given")
        return report
    local = local_path(d.path)
    if local is None:
        return _check_hub(report, d.path, key)
    try:
        _, files = data_files(local)
    except FileNotFoundError:
        problem(f"{where}no such file or directory: {d.path}",
                hint="paths are relative to the directory you launch from" if not Path(d.path).is_absolute() else "")
        return report
    except ValueError as exc:
        problem(f"{where}{exc}")
        return report
    for file in files:
        if not os.access(file, os.R_OK):
            problem(f"{where}cannot read {file} (permission denied)", str(file))
            continue
        rows_before = report.rows
        try:
            for line, number, row in rows_of(file):
                report.rows += 1
                message = None
                if isinstance(row, BadRow):
                    message = str(row)
                elif not isinstance(row, dict):
                    message = f"row {number} is not an object with fields"
                else:
                    try:
                        check_row(row, d)
                    except RowError as exc:
                        message = str(exc)
                if message is not None:
                    report.bad += 1
                    if report.bad <= MAX_REPORTED:
                        at = "" if line else f"row {number}: "  # file:line is printed in front
                        problem(f"{where}{at}{message}", str(file), line)
        except OSError as exc:
            problem(f"{where}cannot read {file}: {exc}", str(file))
        if report.rows == rows_before:
            problem(f"{where}the file is empty (no rows)", str(file))
    if report.bad > MAX_REPORTED:
        problem(f"{where}{report.bad - MAX_REPORTED} more bad row(s) not listed ({report.bad} of {report.rows} rows are bad)")
    return report


def _check_hub(report: SourceReport, dataset_id: str, key: str) -> SourceReport:
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or os.environ.get("HF_DATASETS_OFFLINE", "") not in ("", "0"):
        report.checked, report.note = False, "Hub dataset: not checked (offline mode)"
        return report
    try:
        from huggingface_hub import HfApi
        from huggingface_hub.utils import GatedRepoError, RepositoryNotFoundError

        HfApi().dataset_info(dataset_id, timeout=HUB_TIMEOUT_S)
        report.note = "Hub dataset: found"
    except RepositoryNotFoundError:
        report.problems.append(Problem("error", f"{dataset_id}: no such dataset on the Hugging Face Hub (nor a local "
                                       "file or directory of that name)", key=key,
                                       hint="check the spelling (org/name); a private dataset needs HF_TOKEN"))
    except GatedRepoError:
        report.note = "Hub dataset: gated; needs HF_TOKEN with access"
    except Exception as exc:  # noqa: BLE001 - unreachable Hub, proxy, import: not checked, never an error
        report.checked, report.note = False, f"Hub dataset: not checked ({type(exc).__name__})"
    return report


def check(config, *, hub: bool = True) -> list[Problem]:
    """Every data problem of this config (training sources, then eval data), as Problems; [] when all is well."""
    return [p for r in reports(config, hub=hub) for p in r.problems]


def print_check(config, stream=None) -> bool:
    """Run the check and print its problems and notes (to stderr); True when the data is fit to train."""
    import sys

    stream = stream or sys.stderr
    found = reports(config)
    for report in found:
        for problem in report.problems:
            print(problem.format(), file=stream)
        if report.note and not report.checked:
            print(f"note: {report.label}: {report.path}: {report.note}", file=stream)
    return not any(r.problems for r in found)


def reports(config, *, hub: bool = True) -> list[SourceReport]:
    out = []
    for source in [*sources(config), *sources(config, eval_data=True)]:
        if not hub and local_path(source.data.path) is None:
            out.append(SourceReport(source.label, source.data.path, checked=False, note="Hub dataset: not checked"))
            continue
        out.append(check_source(source))
    return out

