"""The editor screen and its dialogs, one module each."""
