"""The monitor's performance behaviours, with the real app driven by Pilot: a large log opens at its
tail and the full index replaces it in place; live plots are redrawn at most once a second but the
final state is always drawn; a fast writer's batches are coalesced; a paused view is not repainted
for every batch; the incremental curves and diagnosis give what a full recomputation gives."""

from __future__ import annotations

import contextlib
import math
import random
import threading
import time
from array import array


from fixtures import fake_runner
from fixtures.monitor_app import MonitorTestApp, history_run, wait_for
from runner.rundir import new_run_dir
from tui import run_watch
from runner.run_diagnosis import diagnose
from runner.run_model import RunModel
from tui.screens import monitor
from tui.screens.monitor import MonitorScreen
from tui.widgets.log_view import LogView
from tui.widgets.run_plots import Curve, LossPlot, smooth, thin


async def test_a_large_log_opens_at_its_tail_and_the_full_index_keeps_the_view_in_place(tmp_path,
                                                                                      monkeypatch) -> None:
    run = history_run(tmp_path / "runs", "normal", steps=50)
    with open(run.log, "a", encoding="utf-8") as log:
        log.writelines(f"filler line {i:05d} of a long log\n" for i in range(3000))
    lines = sum(1 for _ in open(run.log, encoding="utf-8"))
    monkeypatch.setattr(run_watch, "TAIL_FROM", 10_000)  # bytes: this ~100 KB log counts as large
    monkeypatch.setattr(run_watch, "TAIL_BYTES", 8_000)
    monkeypatch.setattr(run_watch, "FULL_CHUNKS_PER_TICK", 0)  # hold the full index back for now
    app = MonitorTestApp(tmp_path / "runs", attach=run)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.loaded
                       and app.screen._drawn_version >= 0, what="monitor loaded")
        screen = app.screen
        log = screen.query_one(LogView)
        await wait_for(pilot, lambda: log.total and log.scroll_offset.y == log.max_scroll_y, what="log at its end")
        assert 0 < log.total < lines  # the tail only
        assert log.visible_text()[-1] == "filler line 02999 of a long log"
        assert "indexing the rest" in str(log.border_title)
        assert len(screen.model.train) == 50  # the curves do not wait for the full index
        await pilot.press("pageup")
        await pilot.press("up", "up")
        assert not log.following
        shown = log.visible_text()

        monkeypatch.setattr(run_watch, "FULL_CHUNKS_PER_TICK", 1)
        await wait_for(pilot, lambda: log.total == lines and f"{lines:,} lines" in str(log.border_title),
                       what="full index")
        assert log.visible_text() == shown  # the same lines on screen, now numbered from the start
        assert not log.following
        assert f"{lines:,} lines" in str(log.border_title)
        await pilot.press("home")
        await wait_for(pilot, lambda: log.visible_text()[0] == "[tunedeck] launching: fake", what="home: the first line")
        await pilot.press("end")
        await wait_for(pilot, lambda: log.visible_text()[-1] == "filler line 02999 of a long log", what="end: the last")


async def test_a_small_log_is_indexed_at_once(tmp_path) -> None:
    run = history_run(tmp_path / "runs", "normal", steps=50)
    app = MonitorTestApp(tmp_path / "runs", attach=run)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.loaded,
                       what="monitor loaded")
        log = app.screen.query_one(LogView)
        await wait_for(pilot, lambda: log.total > 0, what="log")
        assert log.index.start == 0 and log.total == sum(1 for _ in open(run.log, encoding="utf-8"))
        await wait_for(pilot, lambda: app.editor is not None and app.editor.is_mounted,
                       what="the editor underneath mounted before the app exits")


def running_run(root, name: str, first_line: str):
    """A run directory that says "running", with one log line and no events yet: the test writes the rest."""
    from runner import presets

    run = new_run_dir(root, name)
    presets.save(presets.require("demo").config, run.config)
    run.update_status(state="running", preset=name, started=time.time())
    run.log.write_text(first_line + "\n")
    return run


@contextlib.asynccontextmanager
async def monitor_of_running_run(tmp_path, name: str, first_line: str, size: tuple[int, int]):
    """The monitor, loaded, of a run that says "running" (see running_run): (run, pilot, monitor)."""
    run = running_run(tmp_path / "runs", name, first_line)
    app = MonitorTestApp(tmp_path / "runs", attach=run)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.loaded, what="monitor loaded")
        yield run, pilot, app.screen


def write_live_steps(run, steps: int, interval: float) -> None:
    """Play a run's steps into its directory in real time, then finish it (the test's own writer,
    started once the monitor is up, so the run is live for as long as the test needs)."""
    from runner.events import EventWriter

    cfg = fake_runner.settings(steps=steps, lines_per_step=20)
    events = EventWriter(run.events)
    start = time.time()
    fake_runner.started(events, cfg, start, 0, None)
    with open(run.log, "a", encoding="utf-8") as log:
        for step in range(1, steps + 1):
            fake_runner.emit_step(run, events, log, cfg, step, time.time(), start, 0)
            log.flush()
            time.sleep(interval)  # the scenario: a trainer's pace, not a wait
    fake_runner.events_time(events, "run_finished", steps, time.time(), reason="completed",
                            final_path=str(run.final), merged_path=None, train_loss=1.0, total_steps=steps,
                            elapsed_s=time.time() - start)
    run.update_status(state="finished", ended=time.time())


async def test_live_plots_redraw_at_most_once_a_second_and_the_final_state_is_drawn(tmp_path) -> None:
    async with monitor_of_running_run(tmp_path, "live", "[tunedeck] launching: fake", (120, 40)) as (run, pilot, screen):
        plot = screen.query_one(LossPlot)
        draws: list[tuple[float, str, int]] = []  # (when, state, points drawn)
        draw = plot.draw

        def recording_draw(model, x_axis):
            draws.append((time.monotonic(), screen.state, len(model.train)))
            draw(model, x_axis)

        plot.draw = recording_draw
        writer = threading.Thread(target=write_live_steps, args=(run, 80, 0.05))  # live for 4 s or more
        writer.start()
        await wait_for(pilot, lambda: screen.state == "finished", timeout=60, what="run finished")
        writer.join()
        await wait_for(pilot, lambda: draws and draws[-1][2] == 80 and screen._drawn_version == screen.model.version,
                       what="the final picture drawn")
        live = [when for when, state, _ in draws if state in ("starting", "running")]
        assert len(live) >= 2, draws  # it did redraw while the run was live ...
        gaps = [b - a for a, b in zip(live, live[1:])]
        assert min(gaps) >= monitor.LIVE_PLOT_INTERVAL * 0.9, gaps  # ... but not for every batch
        assert draws[-1][2] == 80 == len(screen.model.train)  # the last picture has every step
        assert screen._drawn_version == screen.model.version
        assert "train" in plot.plt.build()


async def test_a_fast_writer_is_coalesced_and_a_paused_view_is_not_repainted_per_batch(tmp_path) -> None:
    async with monitor_of_running_run(tmp_path, "flood", "first line", (100, 30)) as (run, pilot, screen):
        log = screen.query_one(LogView)
        watcher = screen.watcher
        takes = []
        take = watcher.take
        watcher.take = lambda: takes.append(time.monotonic()) or take()

        bursts, per_burst = 300, 20

        def write() -> None:  # 6,000 lines in 300 bursts over ~0.6 s
            with open(run.log, "a", encoding="utf-8") as out:
                for b in range(bursts):
                    out.write("".join(f"burst {b:03d} line {i:02d}\n" for i in range(per_burst)))
                    out.flush()
                    time.sleep(0.002)  # the scenario: 300 separate bursts, not a wait

        started = time.monotonic()
        writer = threading.Thread(target=write)
        writer.start()
        await wait_for(pilot, lambda: log.total == 1 + bursts * per_burst, what="every line")
        elapsed = time.monotonic() - started
        writer.join()
        assert log.visible_text()[-1] == f"burst {bursts - 1:03d} line {per_burst - 1:02d}"
        # At most one batch per poll of the files, however many bursts were written.
        # (the bound grows with the time the writing took, so a slow machine does not fail it)
        assert len(takes) <= elapsed / run_watch.POLL_INTERVAL + 3, (len(takes), elapsed)

        await pilot.press("pageup")
        assert not log.following
        await wait_for(pilot, lambda: "paused" in str(log.border_title), what="the title says paused")
        painted = []
        render_line = log.render_line
        log.render_line = lambda y: painted.append(y) or render_line(y)
        total = log.total
        with open(run.log, "a", encoding="utf-8") as out:
            for b in range(10):
                out.write(f"while paused {b}\n" * 50)
                out.flush()
                await pilot.pause(0.06)  # the scenario: ten batches the watcher sees apart, not a wait
        await wait_for(pilot, lambda: log.total == total + 500, what="lines while paused")
        await pilot.pause(0.1)  # the scenario: time for a repaint that must not come (no condition to wait on)
        rows = log.scrollable_content_region.height
        assert len(painted) <= rows  # at most one repaint (the title's line count, once a second)
        await pilot.press("end")
        await wait_for(pilot, lambda: log.visible_text()[-1] == "while paused 9", what="following again")


def test_incremental_curves_match_a_full_recomputation() -> None:
    rng = random.Random(7)
    for _ in range(50):
        xs, ys = array("d"), array("d")
        plain, smoothed = Curve(), Curve(smoothed=True)
        for _ in range(rng.randint(1, 20)):
            for _ in range(rng.randint(0, 60)):
                xs.append(math.nan if rng.random() < 0.05 else float(len(xs)))
                ys.append(math.nan if rng.random() < 0.1 else rng.random())
            plain.update(xs, ys)
            smoothed.update(xs, ys)
            limit = rng.randint(2, 50)
            assert plain.thin(limit) == thin(xs, ys, limit)
            assert smoothed.thin(limit) == thin(xs, smooth(ys), limit)
        del xs[len(xs) // 2:]  # a resumed run drops points: the curve starts over
        plain.update(xs, ys, generation=1)
        assert plain.thin(10) == thin(xs, ys, 10)


def test_incremental_diagnosis_matches_a_fresh_one_as_the_run_grows_and_resumes() -> None:
    rng = random.Random(11)
    model, step = RunModel(), 0
    model.fold([{"type": "run_started", "step": 0, "time": 0, "total_steps": 3000}])
    for batch in range(40):
        events = []
        for _ in range(rng.randint(0, 60)):
            step += 1
            norm = 40.0 if rng.random() < 0.03 else (None if rng.random() < 0.05 else 1 + rng.random() / 10)
            loss = None if rng.random() < 0.03 else 2.3 + rng.random() / 10
            events.append({"type": "log", "step": step, "loss": loss, "grad_norm": norm, "epoch": step / 100})
        if batch in (15, 30):
            step -= 25
            events.append({"type": "run_started", "step": step, "time": 1, "resumed_from": "checkpoint",
                           "start_step": step})
        model.fold(events)
        fresh = RunModel()
        fresh.train, fresh.evals = model.train, model.evals
        fresh.step, fresh.total_steps, fresh.nonfinite_losses = model.step, model.total_steps, model.nonfinite_losses
        assert diagnose(model, None) == diagnose(fresh, None)
