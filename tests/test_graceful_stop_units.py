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


@pytest.fixture
def no_group_left():
    yield
    import torch.distributed as dist

    if dist.is_initialized():  # the test failed: do not leave a group to the tests after it
        dist.destroy_process_group()


@pytest.mark.parametrize("ending", ["returns", "raises"])
def test_every_rank_closes_its_process_group_before_exiting(tmp_path: Path, monkeypatch, restored_handlers,
                                                            no_group_left, ending) -> None:
    """A rank that exits with torch.distributed still up can die on SIGABRT in interpreter shutdown
    (gloo's threads outlive Python); the launcher then calls a clean stop a failure."""
    import torch.distributed as dist

    from runner import train as train_module
    from runner.diagnose import RunError

    def fake_train(run, events, stop, *, resume, is_main):
        dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
        flag = __import__("torch").tensor([1.0])
        dist.all_reduce(flag)  # the stop vote every step makes
        if ending == "raises":
            raise RunError("the data went away")
        return 0

    monkeypatch.setenv("RANK", "1")  # not the main rank: no run lock, no events
    monkeypatch.setattr(train_module, "train", fake_train)
    monkeypatch.setattr(train_module, "_run_config", lambda run: None)
    code = train_module.main([str(tmp_path / "run")])
    assert code == (0 if ending == "returns" else 1)
    assert not dist.is_initialized()
