"""The [generation] section as `model.generate` arguments: one translation for the samples written
during training and for the playground (`tunedeck try`), so both decode the same way."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator


def generate_kwargs(g: Any) -> dict[str, Any]:
    """Keyword arguments for transformers' `generate` from a GenerationSection.

    Sampling knobs are passed only when sampling (transformers warns about them otherwise), and a
    temperature of 0 means greedy decoding, as the schema's help says (transformers refuses 0)."""
    sample = bool(g.do_sample) and g.temperature > 0
    kwargs: dict[str, Any] = {"max_new_tokens": g.max_new_tokens, "do_sample": sample}
    if sample:
        kwargs.update(temperature=g.temperature, top_p=g.top_p, top_k=g.top_k)
    if g.repetition_penalty != 1.0:
        kwargs["repetition_penalty"] = g.repetition_penalty
    return kwargs


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Draw with `seed` and leave every other random stream as it was (training's RNG included)."""
    import torch

    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
