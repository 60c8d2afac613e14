"""Shipped tunedeck presets (TOML data files; nothing here is executed)."""
