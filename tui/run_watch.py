"""Follow a run directory from disk: output.log, events.jsonl and status.json (never a pipe).

One `RunWatcher` thread per open monitor. It indexes the log (`LogIndex`: a sparse index of
line offsets, so a million-line log costs a few MB and any range is read on demand), reads
appended events in bounded chunks and re-reads status.json now and then. It never touches
widgets: it collects what is new and posts `RunWatcher.Changed`; the UI then `take()`s everything
gathered so far. `Changed` merges with the next one still queued (`Message.can_replace`), so while
the UI is busy batches grow instead of messages piling up: a fast writer cannot flood the app.

A file it cannot read (missing for a moment, replaced by something else, damaged) is reported as
`RunWatcher.Failed` naming the file, and tried again every tick; `RunWatcher.Recovered` follows once
it reads again. The watcher never stops on its own: only `stop()` ends it.

A large log (over TAIL_FROM bytes) opens at its end: the first index covers only its last
TAIL_BYTES, so the first frame does not wait for a pass over the whole file; the events are
folded next (the curves), and the full index is built in the background a few chunks per tick,
then replaces the tail index (`Update.shift` says how many lines came before, so a view that was
scrolled up keeps its place). Filters wait for the full index.
"""

from __future__ import annotations

import json
import re
import threading
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any, Callable

from textual.message import Message

from runner.run_model import RunModel

STRIDE = 32  # the index keeps the byte offset of every 32nd line: 0.25 bytes a line
CHUNK = 4 << 20  # bytes read per step, so one step never stalls the thread for long
POLL_INTERVAL = 0.05  # seconds between looks at the files: bounds the write-to-screen lag
STATUS_INTERVAL = 1.0
TAIL_FROM = 16 << 20  # logs larger than this (bytes) open at their tail, indexed in full afterwards
TAIL_BYTES = 1 << 20  # how much of the end the first index covers: many screens of lines
FULL_CHUNKS_PER_TICK = 8  # chunks of the full index built per poll tick: live updates keep flowing
EVENT_CHUNK = 1 << 20  # bytes of events.jsonl parsed at a time: one json.loads holds the GIL ~10 ms
# and its dicts (several times the text) are all alive at once, so small chunks keep the UI thread
# responsive and the peak memory low while a long history is folded.
FIRST_FRAME_WAIT = 1.0  # seconds the history fold waits for the UI to take the log's first batch
WARNINGS_AND_ERRORS = r"warn|error|exception|traceback|fatal|critical|killed|out of memory|\bnan\b"


class LogIndex:
    """Line index of a growing text file. Written by one thread (`feed`), read by another (`read`).

    Safe without a lock under the GIL because `feed` appends offsets before it publishes the
    new `end` and `lines`, so a reader never sees a line count the offsets do not cover.
    """

    def __init__(self, path: str | Path, start: int = 0) -> None:
        """Lines from byte offset `start` (the beginning of a line) on: line 0 starts there."""
        self.path = Path(path)
        self.start = start
        self.blocks = array("Q")  # blocks[k] = byte offset where line k*STRIDE starts
        self.end = start  # byte offset just after the last complete line
        self.lines = 0  # complete lines indexed
        self._cache: OrderedDict[tuple[int, int], list[str]] = OrderedDict()

    def feed(self, body: bytes) -> int:
        """Index `body`: complete lines (ending in b"\\n") that start at `self.end`. Returns lines added."""
        parts = body.split(b"\n")
        parts.pop()  # what follows the last newline: b"" since body ends with one
        n = len(parts)
        first = (-self.lines) % STRIDE  # index in `parts` of the first line whose number is a multiple of STRIDE
        if first < n:
            # Start of line i = where body starts + lengths of lines before it + one newline each.
            ends = list(accumulate(map(len, parts)))
            base = self.end
            for i in range(first, n, STRIDE):
                self.blocks.append(base + (ends[i - 1] if i else 0) + i)
        self.end += len(body)
        self.lines += n
        return n

    def read(self, start: int, count: int) -> list[str]:
        """Lines [start, start+count) (fewer at the end), decoded, without their newline."""
        stop = min(start + count, self.lines)
        if start >= stop:
            return []
        out: list[str] = []
        with open(self.path, "rb") as handle:
            for block in range(start // STRIDE, (stop - 1) // STRIDE + 1):
                lines = self._block(handle, block)
                lo = max(start, block * STRIDE) - block * STRIDE
                hi = min(stop, (block + 1) * STRIDE) - block * STRIDE
                out.extend(lines[lo:hi])
        return out

    def line(self, number: int) -> str:
        lines = self.read(number, 1)
        return lines[0] if lines else ""

    def _block(self, handle: Any, block: int) -> list[str]:
        begin = self.blocks[block]
        end = self.blocks[block + 1] if block + 1 < len(self.blocks) else self.end
        key = (block, end)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        handle.seek(begin)
        lines = handle.read(end - begin).decode("utf-8", "replace").split("\n")[:STRIDE]
        self._cache[key] = lines
        if len(self._cache) > 256:  # ~8k lines: a few screens either way
            self._cache.popitem(last=False)
        return lines


@dataclass
class LineFilter:
    """Line numbers of the lines matching `pattern` (case-insensitive), built as the log grows."""

    pattern: str
    regex: re.Pattern[bytes] = field(init=False)
    matches: array = field(default_factory=lambda: array("L"))
    scanned: int = 0  # lines [0, scanned) have been searched
    complete: bool = False  # caught up with the index at least once

    def __post_init__(self) -> None:
        self.regex = re.compile(self.pattern.encode("utf-8"), re.IGNORECASE)

    def scan(self, body: bytes, first_line: int) -> None:
        """Search complete lines `body` whose first line is number `first_line`."""
        regex, out = self.regex, self.matches
        pos = last = 0
        line = first_line
        while True:
            found = regex.search(body, pos)
            if found is None:
                break
            start = found.start()
            line += body.count(b"\n", last, start)
            out.append(line)
            newline = body.find(b"\n", start)
            if newline < 0:
                break
            pos = last = newline + 1
            line += 1
        self.scanned = first_line + body.count(b"\n")


def filter_pattern(text: str) -> str:
    """The user's filter text as a literal, case-insensitive pattern."""
    return re.escape(text)


class EventReader:
    """Complete events appended to events.jsonl since the last call, at most `limit` bytes at a time
    (runner.events.EventTail, the one incremental reader of events)."""

    def __init__(self, path: str | Path) -> None:
        from runner.events import EventTail

        self._tail = EventTail(path)

    @property
    def offset(self) -> int:
        return self._tail.offset

    def poll(self, limit: int = EVENT_CHUNK) -> tuple[list[dict[str, Any]], bool]:
        """(events, more): `more` is True when the file holds more than was read this time."""
        events = self._tail.poll(limit)
        return events, self._tail.more


class WatchError(Exception):
    """A file of the run directory holds what it never should (its message says which and what)."""


@dataclass
class Update:
    """Everything new since the last `take()`."""

    events: list[dict[str, Any]]
    lines: int  # complete lines in the log now
    status: dict[str, Any] | None  # status.json when it changed, else None
    filter_changed: bool
    reset: bool  # the log was truncated or replaced: forget what was shown
    shift: int = 0  # the tail index was replaced by the full one: this many lines now come before


class RunWatcher(threading.Thread):
    class Changed(Message, bubble=False):
        """Something new is waiting: `take()` it. One queued `Changed` stands for any number."""

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, RunWatcher.Changed)

    @dataclass
    class Failed(Message, bubble=False):
        """Reading `source` (a file of the run directory) failed with `error`; tried again every tick."""

        source: str
        error: str

    @dataclass
    class Recovered(Message, bubble=False):
        """`source` reads again after a `Failed`."""

        source: str

    def __init__(self, run_dir: str | Path, post: Callable[[Message], Any], interval: float = POLL_INTERVAL) -> None:
        """`post` delivers the watcher's messages (a screen's `post_message`: safe from this thread)."""
        super().__init__(name=f"watch {Path(run_dir).name}", daemon=True)
        self.run_dir = Path(run_dir)
        self.post = post
        self.interval = interval
        self.index = LogIndex(self.run_dir / "output.log")
        self.model = RunModel()  # folded here until `loaded`; the UI owns it afterwards
        self.status: dict[str, Any] = {}
        self.filter: LineFilter | None = None
        self.loaded = threading.Event()
        self.errors: dict[str, str] = {}  # file name -> what is wrong with it now (reported once)
        self._taken = threading.Event()  # the UI took a batch
        self._events = EventReader(self.run_dir / "events.jsonl")
        self._lock = threading.Lock()  # guards what the UI takes; the watcher fills it meanwhile
        self._stopping = threading.Event()
        self._wanted_filter: str | None = None
        self._filter_dirty = False
        self._pending: list[dict[str, Any]] = []
        self._status_changed = False
        self._filter_changed = False
        self._reset = False
        self._shift = 0
        self._full: LogIndex | None = None  # the whole log, being indexed while `index` covers its tail
        self._status_raw = b""
        self._status_due = 0.0

    # --- called from the UI thread ---------------------------------------------------------------------
    def take(self) -> Update:
        with self._lock:
            update = Update(self._pending, self.index.lines, dict(self.status) if self._status_changed else None,
                            self._filter_changed, self._reset, self._shift)
            self._pending = []
            self._status_changed = self._filter_changed = self._reset = False
            self._shift = 0
        self._taken.set()
        return update

    def set_filter(self, pattern: str | None) -> None:
        """Show only lines matching `pattern` (a regex; None for all); the scan runs in this thread."""
        with self._lock:
            self._wanted_filter = pattern
            self._filter_dirty = True

    def stop(self) -> None:
        self._stopping.set()

    # --- the thread --------------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._guarded("status.json", self._read_status, True)
            self._guarded("output.log", self._start_at_tail)
            # The log first: its end is on screen after one pass over the file (or over its tail),
            # before the (slower to parse) event history is folded.
            while self._guarded("output.log", self._step_log):
                if self._stopping.is_set():
                    return
            self.post(self.Changed())
            # Let the UI draw the log before the history fold competes with it for the GIL: the
            # curves can appear a moment after the first frame.
            self._taken.wait(FIRST_FRAME_WAIT)
            while self._guarded("output.log", self._step_log) | self._guarded("events.jsonl", self._step_events, True):
                if self._stopping.is_set():
                    return
            self.loaded.set()
            self.post(self.Changed())
            while not self._stopping.wait(self.interval):
                self.poll_once()
        finally:
            self.loaded.set()

    def _guarded(self, source: str, step: Callable[..., bool | None], *args: Any) -> bool:
        """Run one step that reads `source` (a file, or a file and what is read from it); a failure is
        reported (once while it lasts), not raised, so a damaged or vanished file never stops the
        watcher: the next tick tries again, and the step's next success reports the recovery."""
        try:
            result = bool(step(*args))
        except Exception as error:  # noqa: BLE001 - anything a run directory can hold: shown, then retried
            text = f"{type(error).__name__}: {error}" if not isinstance(error, WatchError) else str(error)
            if self.errors.get(source) != text:
                self.errors[source] = text
                self.post(self.Failed(source, text))
            return False
        if source in self.errors:
            del self.errors[source]
            self.post(self.Recovered(source))
        return result

    def poll_once(self) -> None:
        import time

        # Each step reports under its own name: a step with nothing to do (no full index being built)
        # must not count as the file reading again while another step still fails on it.
        changed = self._guarded("output.log (full index)", self._step_full)
        for _ in range(8):  # bounded work per tick: a huge burst is spread over a few ticks
            grew = self._guarded("output.log", self._step_log)
            got = self._guarded("events.jsonl", self._step_events, False)
            changed |= grew or got
            if not (grew or got):
                break
        changed |= self._guarded("output.log (filter)", self._apply_filter_change)
        now = time.monotonic()
        if now >= self._status_due:
            self._status_due = now + STATUS_INTERVAL
            changed |= self._guarded("status.json", self._read_status)
        if changed:
            self.post(self.Changed())

    def _start_at_tail(self) -> None:
        """A large log: index only its last TAIL_BYTES for now (from the start of a line)."""
        path = self.index.path
        try:
            with open(path, "rb") as handle:
                size = handle.seek(0, 2)
                if size <= TAIL_FROM:
                    return
                handle.seek(size - TAIL_BYTES)
                data = handle.read(TAIL_BYTES)
        except FileNotFoundError:
            return
        newline = data.find(b"\n")
        if newline < 0:
            return
        self._full = LogIndex(path)
        self.index = LogIndex(path, start=size - TAIL_BYTES + newline + 1)

    def _step_log(self) -> bool:
        index = self.index
        try:
            with open(index.path, "rb") as handle:
                size = handle.seek(0, 2)
                if size < index.end:  # truncated or replaced: index it again from the start
                    self._restart_log()
                    return True
                if size == index.end:
                    return False
                handle.seek(index.end)
                data = handle.read(CHUNK)
        except FileNotFoundError:
            return False
        body = self._complete_lines(data)
        if body is None:
            return False
        first = index.lines
        active = self.filter
        index.feed(body)
        if active is not None and active.complete:
            active.scan(body, first)
        return True

    @staticmethod
    def _complete_lines(data: bytes) -> bytes | None:
        """The complete lines at the start of `data` (None: only an unfinished line)."""
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            if len(data) < CHUNK:
                return None  # an unfinished line: wait for its newline
            return data[:-1] + b"\n"  # a line longer than a chunk: index the chunk as if it ended one
        return data[:cut]

    def _step_full(self) -> bool:
        """Build the full index a few chunks further, up to where the tail index is; once there,
        it replaces the tail index (True then)."""
        full, tail = self._full, self.index
        if full is None:
            return False
        with open(full.path, "rb") as handle:
            for _ in range(FULL_CHUNKS_PER_TICK):
                if full.end >= tail.end:
                    break
                handle.seek(full.end)
                body = self._complete_lines(handle.read(min(CHUNK, tail.end - full.end)))
                if body is None:  # cannot happen below tail.end (complete lines); be safe
                    break
                full.feed(body)
        if full.end < tail.end:
            return False
        with self._lock:
            self._shift += full.lines - tail.lines
            self.index = full
            self._full = None
        return True

    def _restart_log(self) -> None:
        with self._lock:
            self._full = None
            self.index = LogIndex(self.index.path)
            if self.filter is not None:
                self.filter = LineFilter(self.filter.pattern)
            self._reset = True

    def _step_events(self, fold: bool) -> bool:
        events, more = self._events.poll()
        if events:
            if fold:
                self.model.fold(events)
            else:
                with self._lock:
                    self._pending.extend(events)
        return bool(events) or more

    def _apply_filter_change(self) -> bool:
        if self._full is not None:
            return False  # line numbers are the full index's: search once it is built
        with self._lock:
            if not self._filter_dirty:
                pattern = None if self.filter is None or self.filter.complete else self.filter.pattern
                if pattern is None:
                    return False
            else:
                pattern = self._wanted_filter
                self._filter_dirty = False
                self.filter = LineFilter(pattern) if pattern else None
        active = self.filter
        if active is not None and not active.complete:
            self._scan_existing(active)
        with self._lock:
            self._filter_changed = True
        return True

    def _scan_existing(self, active: LineFilter) -> None:
        """Search the lines indexed so far, a chunk at a time, giving up if the filter changes again."""
        end = self.index.end
        offset = 0
        with open(self.index.path, "rb") as handle:
            while offset < end:
                if self._filter_dirty or self._stopping.is_set():
                    return
                handle.seek(offset)
                data = handle.read(min(CHUNK, end - offset))
                cut = data.rfind(b"\n") + 1 or len(data)
                active.scan(data[:cut], active.scanned)
                offset += cut
        active.complete = True

    def _read_status(self, force: bool = False) -> bool:
        try:
            raw = (self.run_dir / "status.json").read_bytes()
        except FileNotFoundError:
            return False  # not written yet (a run being created)
        if raw == self._status_raw and not force:
            return False
        # Written atomically (runner.rundir), so what cannot be parsed is damaged, not half-written.
        try:
            status = json.loads(raw)
        except ValueError as exc:
            raise WatchError(f"status.json is not valid JSON ({exc})") from exc
        if not isinstance(status, dict):
            raise WatchError(f"status.json holds a JSON {type(status).__name__}, not an object")
        with self._lock:
            self._status_raw = raw
            self.status = status
            self._status_changed = True
        return True
