"""Shared test set-up: every test runs with its own user dirs, never the developer's ~/.config."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY_MODULES = ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "datasets")


@pytest.fixture(scope="session")
def shared_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the whole session, so the tiny demo model is built once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path: Path, shared_cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TUNEDECK_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TUNEDECK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("TUNEDECK_CACHE_DIR", str(shared_cache_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


async def settle_editor(pilot, pause: float = 0.1) -> None:
    """Let the editor's form fill in (just after the first frame) and its background workers finish."""
    from fixtures.monitor_app import wait_for

    await wait_for(pilot, lambda: pilot.app.editor.ready, timeout=120, what="the editor's form")
    await pilot.pause(pause)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(pause)


def python_env() -> dict[str, str]:
    """Environment for subprocesses that import the project from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def imported_heavy_modules(code: str) -> list[str]:
    """Run `code` in a fresh interpreter and return which heavy ML modules it imported."""
    import subprocess

    probe = f"{code}\nimport sys\nprint(','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=python_env(), cwd=ROOT, check=True)
    last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    return [m for m in last.split(",") if m]
