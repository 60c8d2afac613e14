"""Which saved model of a run the playground loads: `final`, `latest` or a `checkpoint-N`.

A run directory is data: a name given on the command line or in a request is only ever looked up
inside the run's own `final/` and `checkpoints/`, and a path that leads anywhere else (a `..`, a
symlink out of the run) is refused. No torch here: the CLI and the TUI check names before starting
the playground, and the playground checks them again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from runner.rundir import RunDir

CHECKPOINT_NAME = re.compile(r"checkpoint-(\d+)")
MODEL_FILES = ("config.json", "adapter_config.json")  # a full model, or a LoRA adapter


class CheckpointError(ValueError):
    """A checkpoint name that cannot be used; `code` is no_checkpoint or bad_checkpoint."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Saved:
    name: str  # "final" or "checkpoint-N"
    path: Path

    @property
    def is_adapter(self) -> bool:
        return (self.path / "adapter_config.json").is_file()

    @property
    def step(self) -> int | None:
        m = CHECKPOINT_NAME.fullmatch(self.name)
        return int(m.group(1)) if m else None


def _holds_model(path: Path) -> bool:
    return path.is_dir() and any((path / f).is_file() for f in MODEL_FILES)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def saved_models(run: RunDir) -> list[Saved]:
    """Every loadable model of the run: its checkpoints by step, then final/ when there is one."""
    found: list[Saved] = []
    if run.checkpoints.is_dir():
        for child in run.checkpoints.iterdir():
            if CHECKPOINT_NAME.fullmatch(child.name) and _holds_model(child) and _inside(child, run.path):
                found.append(Saved(child.name, child))
    found.sort(key=lambda s: s.step or 0)
    if _holds_model(run.final) and _inside(run.final, run.path):
        found.append(Saved("final", run.final))
    return found


def resolve_checkpoint(run: RunDir, name: str = "latest") -> Saved:
    """`final`, `latest` (final/ when the run saved one, else its newest checkpoint), `checkpoint-N` or `N`."""
    saved = saved_models(run)
    if not saved:
        raise CheckpointError("no_checkpoint", f"{run.name} has no saved model yet: no final/ and no checkpoint in "
                                               f"{run.checkpoints} (a run saves one every training.save_steps steps)")
    names = [s.name for s in saved]
    wanted = name.strip()
    if wanted == "latest":
        return saved[-1]
    if wanted.isdigit():
        wanted = f"checkpoint-{int(wanted)}"
    if wanted != "final" and not CHECKPOINT_NAME.fullmatch(wanted):
        raise CheckpointError("bad_checkpoint", f"{name!r} is not a checkpoint name: give final, latest, "
                                                f"checkpoint-N or N (this run has: {', '.join(names)})")
    match = next((s for s in saved if s.name == wanted), None)
    if match is None:
        where = run.final if wanted == "final" else run.checkpoints / wanted
        if where.exists() and not _inside(where, run.path):
            raise CheckpointError("bad_checkpoint", f"{where} leads outside the run directory {run.path}; refused")
        raise CheckpointError("bad_checkpoint", f"{run.name} has no {wanted} holding a model "
                                                f"(it has: {', '.join(names)})")
    return match
