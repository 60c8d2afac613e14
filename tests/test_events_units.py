"""Reading the newest events of a run (what listings, `stop` and the supervisor use) without the slow
end-to-end runs: a line still being written is not read, the step of the newest event wins, and the
listing's step/loss/total come from the newest events."""

from __future__ import annotations

import json
from pathlib import Path

from runner.events import EventTail, EventWriter, last_step, newest_events


def lines(*events: dict) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


def test_a_line_is_read_once_its_newline_is_written_as_the_live_reader_does(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(lines({"type": "log", "step": 1}) + json.dumps({"type": "log", "step": 2}))  # no newline yet
    tail = EventTail(path)
    assert [e["step"] for e in tail.poll()] == [1]
    assert [e["step"] for e in newest_events(path)] == [1] and last_step(path) == 1
    with open(path, "a") as handle:
        handle.write("\n")
    assert [e["step"] for e in tail.poll()] == [2]
    assert [e["step"] for e in newest_events(path)] == [1, 2] and last_step(path) == 2


def test_last_step_is_the_newest_event_that_has_a_step(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(lines({"type": "log", "step": 3}, {"type": "log", "step": 7.0}, {"type": "warning", "step": None},
                          {"type": "sample"}) + '{"type": "log", "step": NaN}\n')
    assert last_step(path) == 7 and isinstance(last_step(path), int)
    EventWriter(path).emit("checkpoint", 9, name="checkpoint-9")
    assert last_step(path) == 9


def test_newest_events_read_only_the_end_of_a_long_history(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    for step in range(1, 2001):
        writer.emit("log", step, loss=1.0 / step, note="x" * 40)
    newest = newest_events(path, 4_000)
    assert 10 < len(newest) < 100  # only what fits in the window, and every one whole
    assert [e["step"] for e in newest] == list(range(2001 - len(newest), 2001))
    assert newest_events(path, 10**9)[0]["step"] == 1  # a window larger than the file reads it all
