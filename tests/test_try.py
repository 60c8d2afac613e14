"""Trying a run's model: the playground subprocess, `tunedeck try`, and the Try screen driven by Pilot.

One real demo run is trained once for the whole session (through `tunedeck run demo`, i.e. the real
accelerate launch); every test then talks to a real `python -m runner.playground` on it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from runner import presets
from runner.playground_client import PlaygroundClient
from runner.rundir import RunDir
from tests.conftest import ROOT, imported_heavy_modules, python_env

pytestmark = pytest.mark.slow

# The shipped demo prompts and the answers the bundled data teaches (runner/data/make_demo.py).
DEMO_ANSWERS = {
    "Repeat the word three times. ### Input: lamp": "lamp lamp lamp",
    "Write the plural of the word. ### Input: hill": "hills",
}
DEADLINE_S = 240.0  # 2 shared CPU cores: loading torch alone can take tens of seconds under load


@pytest.fixture(scope="session")
def demo_run(shared_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    """The demo preset trained once per session, exactly as `tunedeck run demo` trains it."""
    run = train(shared_cache_dir, tmp_path_factory.mktemp("try-demo"))
    assert (run.final / "model.safetensors").is_file()
    return run


LORA_RUN = ("--set", "lora.enabled=true", "--set", "training.max_steps=6", "--set", "training.save_steps=3",
            "--set", "training.logging_steps=1", "--set", "training.eval_strategy='no'", "--set", "data.eval_split=0")


@pytest.fixture(scope="session")
def lora_run(shared_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    """A few LoRA steps of the demo: final/ and each checkpoint hold an adapter, not a model."""
    return train(shared_cache_dir, tmp_path_factory.mktemp("try-lora"), *LORA_RUN)


def train(cache: Path, home: Path, *args: str) -> RunDir:
    env = python_env()
    env.update(TUNEDECK_CACHE_DIR=str(cache), TUNEDECK_CONFIG_DIR=str(home / "config"),
               TUNEDECK_STATE_DIR=str(home / "state"), TUNEDECK_RUNS_DIR=str(home / "runs"), HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1")
    result = subprocess.run([sys.executable, "-m", "runner.cli", "run", "demo", *args], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=1800)  # a loaded CI box
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("run directory: "))
    return RunDir(Path(line.split(": ", 1)[1]))


@pytest.fixture
def runs_dir(demo_run: RunDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A runs directory holding the demo run (by symlink) for RUN names to resolve in."""
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / demo_run.name).symlink_to(demo_run.path, target_is_directory=True)
    monkeypatch.setenv("TUNEDECK_RUNS_DIR", str(runs))
    return runs


def copy_run(run: RunDir, to: Path, *, models: bool) -> RunDir:
    """A copy of a run's record; with `models`, its final/ too (to damage it)."""
    to.mkdir(parents=True)
    shutil.copy(run.config, to / "config.toml")
    shutil.copy(run.status_file, to / "status.json")
    (to / "checkpoints").mkdir()
    if models:
        shutil.copytree(run.final, to / "final")
    return RunDir(to)


def wait_reply(client: PlaygroundClient, kind: str, timeout: float = DEADLINE_S) -> dict:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        reply = client.next_reply(timeout=1.0)
        if reply is None:
            continue
        seen.append(reply)
        if reply["type"] == kind:
            return reply
        if reply["type"] in ("exit", "error") and kind not in ("exit", "error"):
            raise AssertionError(f"wanted {kind}, got {reply}")
    raise AssertionError(f"no {kind} reply within {timeout}s; saw {seen[-5:]}")


def completion(client: PlaygroundClient, prompt: str, **request) -> tuple[list[str], dict]:
    """(the streamed pieces, the done reply) of one request."""
    rid = client.generate(prompt, **request)
    pieces: list[str] = []
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        reply = client.next_reply(timeout=1.0)
        if reply is None or reply.get("id") not in (rid, None):
            continue
        if reply["type"] == "token":
            pieces.append(reply["text"])
        elif reply["type"] == "done":
            return pieces, reply
        elif reply["type"] in ("error", "exit"):
            raise AssertionError(reply)
    raise AssertionError(f"no completion within {DEADLINE_S}s")


@pytest.fixture
def playground(demo_run: RunDir):
    client = PlaygroundClient(demo_run.path, env=python_env()).start()
    ready = wait_reply(client, "ready")
    yield client, ready
    pid = client.pid
    client.close()
    assert not psutil.pid_exists(pid)


# --- the playground subprocess -----------------------------------------------------------------------
def test_the_trained_demo_answers_the_shipped_demo_prompts_token_by_token(playground, demo_run) -> None:
    client, ready = playground
    assert ready["checkpoint"] == "final" and ready["adapter"] is False and ready["device"] == "cpu"
    assert ready["checkpoints"][-1] == "final" and any(c.startswith("checkpoint-") for c in ready["checkpoints"])
    shipped = presets.load("demo").config.generation.prompts
    assert set(shipped) == set(DEMO_ANSWERS)  # the answers below are for exactly these prompts
    for prompt, answer in DEMO_ANSWERS.items():
        pieces, done = completion(client, prompt, generation={"do_sample": False})
        assert done["completion"].strip() == answer, (prompt, done)
        assert len(pieces) >= 2 and "".join(pieces) == done["completion"]  # streamed, not sent at the end
        assert done["first_token_s"] is not None and done["tokens"] >= len(pieces)


def test_base_and_tuned_differ_and_a_seed_repeats_a_draw(playground) -> None:
    client, _ = playground
    prompt = next(iter(DEMO_ANSWERS))
    _, tuned = completion(client, prompt, model="tuned", generation={"do_sample": False})
    _, base = completion(client, prompt, model="base", generation={"do_sample": False, "max_new_tokens": 8})
    assert tuned["model"] == "tuned" and base["model"] == "base"
    assert base["completion"] != tuned["completion"]  # the untrained model has not learned the task
    hot = {"do_sample": True, "temperature": 1.5, "top_k": 0, "top_p": 1.0, "seed": 7, "max_new_tokens": 12}
    first = completion(client, "Give the opposite of the word.", generation=hot)[1]["completion"]
    again = completion(client, "Give the opposite of the word.", generation=hot)[1]["completion"]
    assert first == again


def test_a_checkpoint_answers_too_and_a_cancel_stops_a_long_completion(playground, demo_run) -> None:
    client, ready = playground
    checkpoint = next(c for c in ready["checkpoints"] if c.startswith("checkpoint-"))
    _, done = completion(client, next(iter(DEMO_ANSWERS)), model=checkpoint, generation={"do_sample": False})
    assert done["model"] == checkpoint and done["completion"].strip()
    # The untrained base model never emits end-of-sequence: it runs to max_new_tokens unless cancelled.
    rid = client.generate("Count up from the number.", model="base", generation={"do_sample": False,
                                                                                   "max_new_tokens": 400})
    while (reply := client.next_reply(timeout=DEADLINE_S))["type"] != "token":
        assert reply["type"] == "start", reply
    client.cancel()
    done = wait_reply(client, "done")
    assert done["id"] == rid and done["cancelled"] is True and done["tokens"] < 400


def test_bad_requests_are_answered_and_the_playground_goes_on(playground) -> None:
    client, _ = playground
    client.send({"type": "generate", "id": "a", "prompt": "x", "generation": {"temperature": -1}})
    error = wait_reply(client, "error")
    assert error["id"] == "a" and not error["fatal"] and "generation.temperature" in error["message"]
    client.send({"type": "generate", "id": "b", "prompt": "x", "model": "../../etc"})
    error = wait_reply(client, "error")
    assert error["id"] == "b" and "not a checkpoint name" in error["message"]
    client.proc.stdin.write("this is not json\n")
    client.proc.stdin.flush()
    assert wait_reply(client, "error")["code"] == "bad_request"
    _, done = completion(client, next(iter(DEMO_ANSWERS)))  # still serving
    assert done["completion"]


def test_a_lora_run_is_one_base_model_with_its_adapters_switched(lora_run) -> None:
    client = PlaygroundClient(lora_run.path, env=python_env()).start()
    try:
        ready = wait_reply(client, "ready")
        assert ready["adapter"] is True and ready["base"] == "tunedeck:tiny-demo"
        assert ready["checkpoints"] == ["checkpoint-3", "checkpoint-6", "final"]
        greedy = {"do_sample": False, "max_new_tokens": 6}
        prompt = next(iter(DEMO_ANSWERS))
        _, tuned = completion(client, prompt, generation=greedy)
        _, base = completion(client, prompt, model="base", generation=greedy)
        _, early = completion(client, prompt, model="checkpoint-3", generation=greedy)
        _, again = completion(client, prompt, generation=greedy)  # back on final's adapter after the others
        assert tuned["tokens"] and base["tokens"] and early["tokens"]
        assert again["completion"] == tuned["completion"]
    finally:
        client.close()


def _fatal(run_dir: Path, checkpoint: str = "latest", max_memory: int | None = None) -> tuple[dict, dict]:
    """The one error line and the exit of a playground that cannot start."""
    client = PlaygroundClient(run_dir, checkpoint, max_memory=max_memory, env=python_env()).start()
    try:
        error = wait_reply(client, "error")
        exited = wait_reply(client, "exit")
    finally:
        client.close()
    return error, exited


def test_no_checkpoint_a_damaged_one_and_too_little_memory_are_one_clear_line(demo_run, tmp_path) -> None:
    empty = copy_run(demo_run, tmp_path / "empty", models=False)
    error, exited = _fatal(empty.path)
    assert error["fatal"] and error["code"] == "no_checkpoint" and "no saved model yet" in error["message"]
    assert exited["code"] == 2

    damaged = copy_run(demo_run, tmp_path / "damaged", models=True)
    (damaged.final / "model.safetensors").write_bytes(b"\x00not a safetensors file")
    error, exited = _fatal(damaged.path, "final")
    assert error["code"] == "load_failed" and "final" in error["message"] and exited["code"] == 2
    assert "Traceback" not in error["message"]

    error, exited = _fatal(demo_run.path, "final", max_memory=1000)
    assert error["code"] == "too_large" and "--max-memory" in error["message"] and exited["code"] == 2


def test_a_checkpoint_outside_the_run_directory_is_refused(demo_run, tmp_path) -> None:
    run = copy_run(demo_run, tmp_path / "escape", models=True)
    (run.checkpoints / "checkpoint-999").symlink_to(demo_run.final, target_is_directory=True)
    error, exited = _fatal(run.path, "checkpoint-999")
    assert error["code"] == "bad_checkpoint" and "outside the run directory" in error["message"]
    assert exited["code"] == 2
    result = tunedeck("try", str(run.path), "--checkpoint", "checkpoint-999", "--prompt", "x")
    assert result.returncode == 2 and "outside the run directory" in result.stderr


# --- tunedeck try -----------------------------------------------------------------------------------
def tunedeck(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], env=python_env(), cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=DEADLINE_S * 2)


def test_tunedeck_try_prints_the_completion(runs_dir, demo_run, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # another working directory, as in a new SSH login
    prompt, answer = next(iter(DEMO_ANSWERS.items()))
    result = tunedeck("try", demo_run.name[:8], "--runs-dir", str(runs_dir), "--prompt", prompt, "--show-prompt")
    assert result.returncode == 0, result.stderr
    assert result.stdout == answer + "\n"
    assert "### Response:" in result.stderr and "ready: " in result.stderr

    prompts = "\n".join(DEMO_ANSWERS) + "\n"
    result = tunedeck("try", "latest", "--runs-dir", str(runs_dir), "--checkpoint", "final",
                      "--set", "generation.max_new_tokens=16", stdin=prompts)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == list(DEMO_ANSWERS.values())


def test_tunedeck_try_refuses_bad_input_with_a_reason(runs_dir, demo_run) -> None:
    result = tunedeck("try", str(demo_run.path), "--set", "generation.temperatur=0.2", "--prompt", "x")
    assert result.returncode == 2 and "did you mean 'temperature'" in result.stderr
    result = tunedeck("try", str(demo_run.path), "--set", "training.learning_rate=1", "--prompt", "x")
    assert result.returncode == 2 and "[generation] fields only" in result.stderr
    result = tunedeck("try", str(demo_run.path), "--checkpoint", "checkpoint-99999", "--prompt", "x")
    assert result.returncode == 2 and "has no checkpoint-99999" in result.stderr
    result = tunedeck("try", "no-such-run", "--runs-dir", str(runs_dir), "--prompt", "x")
    assert result.returncode == 2 and "no run 'no-such-run'" in result.stderr
    result = tunedeck("try", str(demo_run.path), "--max-memory", "1KiB", "--prompt", "x")
    assert result.returncode == 1 and "--max-memory" in result.stderr and "Traceback" not in result.stderr


def test_the_try_command_and_screen_do_not_import_torch() -> None:
    assert imported_heavy_modules("import runner.commands.try_cmds, runner.playground_client") == []
    assert imported_heavy_modules("import tui.screens.try_screen") == []


# --- the Try screen, driven by Pilot -----------------------------------------------------------------
def try_app(runs: Path | None = None, **kwargs):
    from tui.app import TunedeckApp, state_from
    from tui.services import NoProbe

    return TunedeckApp(state_from(presets.load("demo")), probe=lambda: NoProbe(reason="no NVIDIA driver found"),
                       runs_dir=runs, **kwargs)


async def until(pilot, predicate, what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.1)


async def open_try(pilot, run: RunDir, checkpoint: str = "latest", **options):
    from tui.screens.try_screen import TryScreen

    screen = TryScreen(run, checkpoint, env=python_env(), **options)
    await pilot.app.push_screen(screen)
    await until(pilot, lambda: screen.info is not None or screen.fatal is not None, "the model to load")
    return screen


def finished(screen) -> bool:
    return bool(screen.columns) and all(c.state in ("done", "error") for c in screen.columns.values())


async def generate(pilot, screen, prompt: str | None = None) -> list:
    from textual.widgets import Input

    if prompt is not None:
        screen.query_one("#try-prompt", Input).value = prompt
    screen.query_one("#try-prompt", Input).focus()
    await pilot.press("enter")
    await until(pilot, lambda: finished(screen), "the completions")
    return list(screen.columns.values())


async def test_try_screen_streams_compares_and_sweeps(demo_run) -> None:
    app = try_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await open_try(pilot, demo_run)
        assert screen.fatal is None and "final" in str(screen.sub_title)
        prompt, answer = next(iter(DEMO_ANSWERS.items()))
        [column] = await generate(pilot, screen, prompt)
        assert column.state == "done" and column.text.strip() == answer
        assert column.chunks >= 2  # streamed in token by token
        assert "tok" in str(column.border_subtitle) and "### Response:" in str(column.tooltip)

        await pilot.press("f6")  # compare with the base model, same seed
        tuned, base = await generate(pilot, screen)
        assert str(tuned.border_title).startswith("tuned") and str(base.border_title).startswith("base")
        assert tuned.text.strip() == answer and base.text != tuned.text
        await pilot.press("f6")  # ... then with a checkpoint of the same run
        assert screen.compare_with.startswith("checkpoint-")
        _, other = await generate(pilot, screen)
        assert str(other.border_title) == screen.compare_with and other.state == "done"

        await pilot.press("f7")  # sweep the temperature
        columns = await generate(pilot, screen)
        assert [str(c.border_title) for c in columns] == ["temperature = 0.2", "temperature = 0.7", "temperature = 1.2"]
        assert all(c.state == "done" and c.text for c in columns)

        from textual.widgets import Input

        screen.query_one("#try-sweep", Input).value = "0.1, nonsense, 2.0"
        columns = await generate(pilot, screen)
        assert [str(c.border_title) for c in columns] == ["temperature = 0.1", "temperature = 2.0"]

        await pilot.press("f4")  # two checkpoints of the run: the earliest beside final
        earliest = screen.info["checkpoints"][0]
        assert screen.primary == earliest and earliest.startswith("checkpoint-")
        await pilot.press("f7", "f7", "f7", "f7")  # sweep off again
        assert screen.sweep_key is None
        while screen.compare_with != "final":
            await pilot.press("f6")
        first, second = await generate(pilot, screen)
        assert str(first.border_title) == f"tuned · {earliest}" and str(second.border_title) == "final"
        assert first.state == second.state == "done"


async def test_try_screen_help_and_saving_the_settings_as_a_preset(demo_run, runs_dir) -> None:
    from textual.widgets import Input

    from runner.paths import user_presets_dir
    from tui.screens.runs import RunsScreen
    from tui.screens.try_screen import TryScreen
    from tui.widgets.help_panel import HelpPanel

    app = try_app(runs_dir, open_runs=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.rows, "the runs list")
        await pilot.press("t")  # from the runs screen
        await until(pilot, lambda: isinstance(app.screen, TryScreen), "the Try screen")
        screen = app.screen
        await until(pilot, lambda: screen.info is not None, "the model to load")
        field = screen.query_one("#field-generation--temperature Input", Input)
        field.focus()
        await pilot.pause()
        help_text = str(screen.query_one(HelpPanel).query_one("#help-text").render())
        assert "Temperature" in help_text and "Raise" in help_text
        await pilot.press("ctrl+u", *"0.3")
        seed = screen.query_one("#field-generation--seed Input", Input)
        seed.focus()
        await pilot.press("ctrl+u", *"1234")
        await pilot.pause()
        assert screen.config.generation.temperature == 0.3 and screen.config.generation.seed == 1234
        await pilot.press("ctrl+s")
        await until(pilot, lambda: screen.saved_path is not None, "the preset to be written")
        path = screen.saved_path
        assert path.parent == user_presets_dir() and path.name == "demo-try.toml"
        saved = presets.load(path)
        assert saved.ok, saved.problems
        assert saved.config.generation.temperature == 0.3 and saved.config.generation.seed == 1234
        trained = presets.load(demo_run.config).config
        assert saved.config.training == trained.training and saved.config.data == trained.data
        text = path.read_text()
        assert "# The model to start from" in text  # the run config's comments are kept
        await pilot.press("ctrl+s")
        await until(pilot, lambda: screen.saved_path != path, "a second preset")
        assert screen.saved_path.name == "demo-try-2.toml" and path.read_text() == text  # never overwritten


async def test_closing_the_try_screen_ends_the_playground(demo_run, tmp_path) -> None:
    from tui.screens.monitor import MonitorScreen
    from tui.screens.try_screen import TryScreen

    app = try_app()
    async with app.run_test(size=(120, 40)) as pilot:
        app.push_screen(MonitorScreen(demo_run))
        await until(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.loaded, "the monitor")
        await pilot.press("t")  # from the monitor
        await until(pilot, lambda: isinstance(app.screen, TryScreen), "the Try screen")
        screen = app.screen
        await until(pilot, lambda: screen.info is not None, "the model to load")
        pid = screen.client.pid
        assert psutil.Process(pid).cmdline()[1:3] == ["-m", "runner.playground"]
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MonitorScreen), "the monitor again")
        await until(pilot, lambda: not psutil.pid_exists(pid), "the playground to end", timeout=30)


async def test_try_screen_says_why_a_checkpoint_cannot_be_used(demo_run, tmp_path) -> None:
    damaged = copy_run(demo_run, tmp_path / "damaged", models=True)
    (damaged.final / "model.safetensors").write_bytes(b"\x00not a safetensors file")
    empty = copy_run(demo_run, tmp_path / "empty", models=False)
    app = try_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_try(pilot, damaged)
        status = str(screen.query_one("#try-status").render())
        assert "Cannot try this run" in status and "cannot load" in status and "final" in status
        await until(pilot, lambda: screen.client is None or screen.client.proc.poll() is not None,
                    "the playground to exit")
        await pilot.press("enter")  # nothing to generate with: said, not hung
        await pilot.press("escape")

        screen = await open_try(pilot, empty)
        assert "no saved model yet" in str(screen.query_one("#try-status").render())
        await pilot.press("escape")

        screen = await open_try(pilot, demo_run, "checkpoint-99999")
        assert "has no checkpoint-99999" in str(screen.query_one("#try-status").render())
        await pilot.press("escape")

        screen = await open_try(pilot, demo_run, max_memory=1000)  # as if the machine had 1000 bytes free
        assert "needs about" in str(screen.query_one("#try-status").render())
