"""Where tunedeck keeps things on disk: shipped presets, user presets, caches, state."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "tunedeck"


def shipped_presets_dir() -> Path:
    """The presets/ directory that ships with the package."""
    import presets  # the data package; importing it is cheap (an empty __init__)

    return Path(presets.__file__).resolve().parent


def user_config_dir() -> Path:
    """~/.config/tunedeck (XDG_CONFIG_HOME respected); TUNEDECK_CONFIG_DIR overrides it."""
    override = os.environ.get("TUNEDECK_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir(APP))


def user_presets_dir() -> Path:
    return user_config_dir() / "presets"


def cache_dir() -> Path:
    """~/.cache/tunedeck (XDG_CACHE_HOME respected); TUNEDECK_CACHE_DIR overrides it."""
    override = os.environ.get("TUNEDECK_CACHE_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir(APP))


def state_dir() -> Path:
    """Drafts, recent files and other per-user state; TUNEDECK_STATE_DIR overrides it."""
    override = os.environ.get("TUNEDECK_STATE_DIR")
    return Path(override) if override else Path(platformdirs.user_state_dir(APP))
