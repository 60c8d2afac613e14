"""tunedeck's Textual app. Imports runner; runner never imports tui."""
