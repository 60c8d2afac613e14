"""The always-visible line of derived numbers: effective batch, steps, warmup, tokens per step."""

from __future__ import annotations

from textual.widgets import Static

from ..markup import safe


class DerivedBar(Static):
    HELP = """
## Derived numbers
Effective batch = batch per GPU × accumulation × processes. Steps per epoch and total steps appear
when the dataset can be counted cheaply (local JSONL/CSV or the demo set); `?` means unknown.
While a field holds a value that is not allowed, a red line says so: the numbers are then for its
last valid value.
"""

    def show(self, derived, invalid_note: str | None = None) -> None:
        """Show the numbers; `invalid_note` (a field holds invalid text) says first what they are for."""
        if derived is None:
            self.update("[dim]derived numbers unavailable[/]")
            return
        note = f"[$error]{safe(invalid_note, 400)}[/]\n" if invalid_note else ""

        def num(value) -> str:
            return f"{value:,}" if value is not None else "?"

        warmup = num(derived.warmup_steps)
        examples = f"{derived.num_examples:,} examples · " if derived.num_examples is not None else ""
        self.update(
            f"{note}{examples}effective batch [b]{derived.effective_batch_size:,}[/] · "
            f"steps/epoch [b]{num(derived.steps_per_epoch)}[/] · total steps [b]{num(derived.total_steps)}[/] · "
            f"warmup [b]{warmup}[/] · tokens/step [b]{derived.tokens_per_step:,}[/]"
        )
