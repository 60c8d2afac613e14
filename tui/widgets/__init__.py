"""The editor's widgets, one module each; each widget's own help (HELP) lives beside it."""
