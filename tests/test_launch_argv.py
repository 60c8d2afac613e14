"""accelerate launch flags for multi-node runs: accelerate counts processes over all machines."""

from __future__ import annotations

from runner.launch import build_argv
from runner.schema import Config


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_num_processes_is_the_total_over_machines() -> None:
    config = Config.model_validate({"launch": {"num_processes": 4, "num_machines": 2, "machine_rank": 1,
                                               "main_process_ip": "10.0.0.1", "strategy": "ddp"}})
    argv = build_argv(config, "/tmp/run", cuda=True)
    assert flag(argv, "--num_processes") == "8" and flag(argv, "--num_machines") == "2"
    assert flag(argv, "--machine_rank") == "1" and flag(argv, "--main_process_ip") == "10.0.0.1"
    assert "--multi_gpu" in argv
    assert argv.index("--multi_gpu") < argv.index("-m", 3)  # every accelerate flag before the training module


def test_single_machine_counts_are_unchanged() -> None:
    argv = build_argv(Config.model_validate({"launch": {"num_processes": 2}}), "/tmp/run", cuda=False)
    assert flag(argv, "--num_processes") == "2" and flag(argv, "--num_machines") == "1"
