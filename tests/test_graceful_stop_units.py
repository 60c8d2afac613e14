"""The trainer's side of a graceful stop, without training (the slow e2e tests do it with a real
model): a stop signal makes it checkpoint the step it is on and leave the loop, and every checkpoint
carries what `resume` checks (the config digest and the config trained)."""

from __future__ import annotations

import json
import os
import signal
import types
from pathlib import Path

import pytest

from runner.events import EventWriter, read_events


@pytest.fixture
def restored_handlers():
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stop_signal_is_remembered_not_fatal(restored_handlers, sig) -> None:
    from runner.train import StopFlag

    flag = StopFlag()
    assert not flag.requested
    flag.install()
    os.kill(os.getpid(), sig)  # `tunedeck stop`, Ctrl-C, a closed terminal
    assert flag.requested and flag.signal_name == sig.name


def test_after_a_stop_signal_the_step_is_checkpointed_and_training_leaves(tmp_path: Path, restored_handlers) -> None:
    from transformers import TrainerControl, TrainerState

    from runner.train import StopFlag
    from runner.train_callbacks import EventCallback

    events = EventWriter(tmp_path / "events.jsonl")
    flag = StopFlag()
    callback = EventCallback(events, "digest-1", flag, world_size=1, config_toml="[training]\nmax_steps = 9\n")
    args = types.SimpleNamespace(output_dir=str(tmp_path / "checkpoints"))
    state = TrainerState(global_step=5, is_world_process_zero=True)
    control = callback.on_step_end(args, state, TrainerControl())
    assert not control.should_save and not control.should_training_stop  # no stop asked: train on
    flag.install()
    os.kill(os.getpid(), signal.SIGTERM)
    control = callback.on_step_end(args, state, TrainerControl())
    assert control.should_save and control.should_training_stop

    checkpoint = tmp_path / "checkpoints" / "checkpoint-5"
    checkpoint.mkdir(parents=True)  # the Trainer has saved it
    callback.on_save(args, state, control)
    assert json.loads((checkpoint / "tunedeck.json").read_text()) == {"config_digest": "digest-1"}
    assert (checkpoint / "tunedeck-config.toml").read_text() == "[training]\nmax_steps = 9\n"
    [event] = read_events(tmp_path / "events.jsonl")
    assert event["type"] == "checkpoint" and event["step"] == 5 and event["name"] == "checkpoint-5"
    assert event["path"] == str(checkpoint)
