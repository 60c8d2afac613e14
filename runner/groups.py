"""The editor's groups of fields, in screen order.

Each field in runner.schema names its group (training fields name one; the other sections use
their title). Kept apart from the schema, with no imports, so the editor can paint its section
list before pydantic and the schema load.
"""

GROUPS = (
    "Model", "Data", "LoRA", "Quantization", "Batch & steps", "Optimizer", "Schedule",
    "Precision & memory", "Checkpoints & eval", "Logging", "Generation", "Launch",
)
