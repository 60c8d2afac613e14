"""The transformers Trainer, resuming models whose output head shares the input embedding.

A tied weight is stored once: a checkpoint holds `model.embed_tokens.weight` and not `lm_head.weight`
(the demo model, and most small models, tie them). On resume the Trainer loads the checkpoint with
strict=False and reports every key the file lacks, so a correct resume printed "There were missing
keys in the checkpoint model loaded: ['lm_head.weight']". Here a key counts as missing only when it
is not a tie that the loaded model really shares (same tensor as its source); anything else is still
reported, so a checkpoint that truly lost a weight is not hidden.
"""

from __future__ import annotations

from typing import Any

from transformers import Trainer


def shared_tied_keys(model: Any) -> set[str]:
    """The model's tied weights (target -> source) whose target is the very tensor of its source."""
    tied = getattr(model, "all_tied_weights_keys", None) or {}
    shared = set()
    for target, source in tied.items():
        try:
            if model.get_parameter(target) is model.get_parameter(source):
                shared.add(target)
        except AttributeError:  # not a parameter of this model (e.g. a head it does not have)
            continue
    return shared


class TunedeckTrainer(Trainer):
    def _issue_warnings_after_load(self, load_result: Any) -> None:
        shared = shared_tied_keys(self.model)
        missing = [key for key in load_result.missing_keys if key not in shared]
        super()._issue_warnings_after_load(load_result._replace(missing_keys=missing))
