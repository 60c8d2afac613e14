"""tunedeck runner: config schema, presets, estimator, launcher and the training entry point.

Only `runner.train` (and what it imports lazily) may import torch, transformers,
peft, bitsandbytes, accelerate or datasets; everything else stays light so the
TUI and the CLI start fast.
"""

__version__ = "0.1.0"
