"""[training]: the transformers `TrainingArguments` tunedeck exposes, under their own names."""

from __future__ import annotations

from typing import Literal, Union

from pydantic import StrictInt

from ._field import Section, setting

BATCH, OPTIM, SCHEDULE = "Batch & steps", "Optimizer", "Schedule"
PRECISION, CHECKPOINTS, LOGGING = "Precision & memory", "Checkpoints & eval", "Logging"

# Every value transformers 5 accepts for lr_scheduler_type (transformers.trainer_utils.SchedulerType).
SchedulerName = Literal[
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
    "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
    "warmup_stable_decay", "greedy",
]

# Every value transformers 5 accepts for optim (transformers.training_args.OptimizerNames).
OptimizerName = Literal[
    "adamw_torch", "adamw_torch_fused", "adamw_torch_xla", "adamw_torch_npu_fused", "adafactor",
    "adamw_anyprecision", "adamw_torch_4bit", "adamw_torch_8bit", "ademamix", "sgd", "adagrad",
    "adamw_bnb_8bit", "adamw_8bit", "ademamix_8bit", "lion_8bit", "lion_32bit", "paged_adamw_32bit",
    "paged_adamw_8bit", "paged_ademamix_32bit", "paged_ademamix_8bit", "paged_lion_32bit",
    "paged_lion_8bit", "rmsprop", "rmsprop_bnb", "rmsprop_bnb_8bit", "rmsprop_bnb_32bit",
    "galore_adamw", "galore_adamw_8bit", "galore_adafactor", "galore_adamw_layerwise",
    "galore_adamw_8bit_layerwise", "galore_adafactor_layerwise", "lomo", "adalomo", "grokadamw",
    "schedule_free_radam", "schedule_free_adamw", "schedule_free_sgd", "apollo_adamw",
    "apollo_adamw_layerwise", "stable_adamw",
]

NEEDS_EVAL = "training.load_best_model_at_end"
# Upper bound of every step count: a billion optimizer steps is beyond any real run, and far below
# the 64-bit limits where the trainer's counters overflow.
MAX_STEPS = 1_000_000_000


class TrainingSection(Section):
    # --- Batch & steps -------------------------------------------------------------------------
    per_device_train_batch_size: int = setting(
        8,
        label="Batch size per GPU",
        group=BATCH,
        ge=1,
        le=65536,
        what="How many examples each GPU (or the CPU) processes together in one forward and backward "
        "pass.",
        up="Larger batches use the hardware better and give smoother gradients, but activation memory "
        "grows in proportion; very large effective batches may need a higher learning rate and can "
        "generalise worse.",
        down="Smaller batches fit in less memory and give noisier updates (a mild regulariser); keep "
        "the effective batch by raising gradient accumulation.",
        typical="1-4 for 7B+ models on one GPU, 8-32 for small models; 8-256 overall",
        advice="Use the largest value that fits in memory, then reach the effective batch you want "
        "with gradient accumulation.",
    )
    per_device_eval_batch_size: int = setting(
        8,
        label="Eval batch per GPU",
        group=BATCH,
        ge=1,
        le=65536,
        what="Examples per GPU in each evaluation pass. No gradients are kept, so it can usually be "
        "larger than the training batch.",
        up="Faster evaluation, more memory during eval (logits are kept for the whole batch).",
        down="Less memory during eval, slower evaluation.",
        typical="same as or twice the training batch",
    )
    gradient_accumulation_steps: int = setting(
        1,
        label="Gradient accumulation",
        group=BATCH,
        ge=1,
        le=65536,
        what="How many batches' gradients are summed before one optimizer update. The effective batch "
        "is batch per GPU x accumulation x number of processes.",
        up="A larger effective batch without more memory: steadier updates, but fewer optimizer "
        "steps per epoch, so each epoch takes as long while the model is updated less often.",
        down="More frequent updates and quicker reaction, with noisier gradients.",
        typical="1-16; 4 with a per-GPU batch of 1 is a common QLoRA setting",
    )
    num_train_epochs: float = setting(
        3.0,
        applies="!training.max_steps>0",
        label="Epochs",
        group=BATCH,
        ge=0.0,
        le=100000.0,
        what="How many full passes over the training data. Ignored when max_steps is positive. "
        "Fractions are allowed.",
        up="More passes let the model fit the data better, until it starts memorising it (training "
        "loss keeps falling while eval loss rises).",
        down="Fewer passes save time and limit overfitting, but may stop before the model has "
        "learned the task.",
        typical="1-3 for large datasets, 3-5 for small fine-tuning sets; 1 for pre-training",
        advice="With an eval set, enable early stopping rather than guessing the epoch count.",
    )
    max_steps: int = setting(
        -1,
        label="Max steps",
        group=BATCH,
        ge=-1,
        le=MAX_STEPS,
        what="Stop after this many optimizer updates, overriding epochs. -1 means train for "
        "num_train_epochs.",
        up="More updates: more learning and more time.",
        down="Fewer updates: a quick, bounded run, handy for smoke tests.",
        typical="-1 (use epochs); a fixed budget such as 1000 for comparisons and pre-training",
    )
    seed: int = setting(
        42,
        label="Seed",
        group=BATCH,
        ge=0,
        le=2**32 - 1,
        what="Seed for the random generators (data order, dropout, adapter init), so a run can be "
        "repeated.",
        up="Any other value gives a different but equally valid run; try two or three seeds before trusting a "
        "small improvement.",
        down="Keeping the same seed makes a rerun repeat the same data order and initialisation.",
        typical="42",
    )
    # --- Optimizer -------------------------------------------------------------------------------
    learning_rate: float = setting(
        5e-5,
        label="Learning rate",
        group=OPTIM,
        gt=0.0,
        le=10.0,
        what="The peak step size of the optimizer: how far the weights move on each update.",
        up="Faster learning, but too high makes the loss jump around, spike or diverge to NaN.",
        down="Steadier training and often a better final model, but slower progress; too low and "
        "the loss barely moves.",
        typical="1e-5 to 5e-5 for full fine-tuning, 1e-4 to 3e-4 for LoRA/QLoRA, about 1e-4 (or 6e-4 "
        "for small models) when pre-training",
        advice="Larger models want smaller rates; small models tolerate higher ones.",
    )
    optim: OptimizerName = setting(
        "adamw_torch_fused",
        label="Optimizer",
        group=OPTIM,
        what="The update algorithm, by its transformers name. AdamW keeps two 32-bit moments per "
        "trainable weight; the 8-bit variants (adamw_bnb_8bit, paged_adamw_8bit) store them in 8 "
        "bits; 'paged' ones can spill to CPU memory under pressure; adafactor factorises the "
        "second moment.",
        up="Heavier optimizers (32-bit AdamW) are the most robust and use 8 bytes per trainable "
        "parameter of state.",
        down="Lighter ones (8-bit, paged, adafactor, sgd) save most of that memory; 8-bit AdamW is "
        "nearly as good in practice.",
        typical="adamw_torch_fused (transformers' default); paged_adamw_8bit for QLoRA",
    )
    weight_decay: float = setting(
        0.0,
        label="Weight decay",
        group=OPTIM,
        ge=0.0,
        le=10.0,
        what="How strongly weights are pulled towards zero at each step (decoupled L2 regularisation "
        "in AdamW).",
        up="Stronger regularisation against overfitting; too much limits what the model can learn.",
        down="Less regularisation; use when the model underfits.",
        typical="0.01 for fine-tuning, 0.1 for pre-training; 0.0001-0.1 overall",
        advice="By dataset size: 0.01-0.1 for small datasets, 0.001-0.01 for large ones.",
    )
    adam_beta1: float = setting(
        0.9,
        label="Adam beta1",
        group=OPTIM,
        ge=0.0,
        lt=1.0,
        what="Decay rate of Adam's running average of gradients (its momentum).",
        up="Closer to 1 averages over more steps: smoother but slower to react.",
        down="Lower reacts faster to new gradients, with noisier updates.",
        typical="0.9",
    )
    adam_beta2: float = setting(
        0.999,
        label="Adam beta2",
        group=OPTIM,
        ge=0.0,
        lt=1.0,
        what="Decay rate of Adam's running average of squared gradients (per-weight step scaling).",
        up="Closer to 1 (0.999) gives stable scaling, but adapts slowly after sudden gradient changes.",
        down="Lower (0.95) adapts faster and is more stable for large-scale pre-training.",
        typical="0.999 for fine-tuning, 0.95 for large pre-training runs",
    )
    adam_epsilon: float = setting(
        1e-8,
        label="Adam epsilon",
        group=OPTIM,
        gt=0.0,
        le=1.0,
        what="Small constant added to Adam's denominator to avoid division by zero.",
        up="Larger damps updates of weights with tiny gradients; can steady fp16 training.",
        down="Smaller follows the pure Adam rule more closely.",
        typical="1e-8",
    )
    max_grad_norm: float = setting(
        1.0,
        label="Gradient clipping",
        group=OPTIM,
        ge=0.0,
        le=1e6,
        what="Clip the global gradient norm to this value before each update (0 disables clipping), "
        "which prevents single bad batches from blowing up the weights.",
        up="A looser limit lets large updates through: faster reaction, more risk of spikes.",
        down="A tighter limit makes training steadier but can slow learning if it clips every step.",
        typical="1.0; 0.3 is common for QLoRA",
    )
    # --- Schedule --------------------------------------------------------------------------------
    lr_scheduler_type: SchedulerName = setting(
        "linear",
        label="LR schedule",
        group=SCHEDULE,
        what="How the learning rate changes over training after warmup: linear decay to zero, cosine "
        "decay, constant, and the other transformers schedules.",
        up="Cosine keeps the rate high longer and eases off smoothly, usually a little "
        "better for long runs.",
        down="Constant is simplest and suits short runs or small models.",
        typical="cosine or linear",
    )
    warmup_steps: Union[StrictInt, float] = setting(
        0,
        label="Warmup",
        group=SCHEDULE,
        ge=0,
        le=MAX_STEPS,
        what="How long the learning rate ramps up from zero at the start. A float below 1 is a "
        "fraction of all steps (0.05 = 5%); a whole number is a count of steps.",
        up="A longer warmup steadies the first updates, which matters for large models, high "
        "learning rates and training from scratch.",
        down="A shorter warmup reaches the full learning rate sooner; small models on simple data "
        "need little.",
        typical="0.03-0.1 of the steps for fine-tuning; 500-10000 steps for pre-training",
    )
    # --- Precision & memory ----------------------------------------------------------------------
    bf16: bool = setting(
        False,
        label="bf16 mixed precision",
        group=PRECISION,
        what="Compute in bfloat16 where it is safe, keeping sensitive parts in float32. Needs an "
        "Ampere or newer GPU (or a recent CPU).",
        up="On: less activation memory and much faster matmuls, with float32's range, so no loss "
        "scaling is needed.",
        down="Off: everything in the weight dtype; on GPUs usually slower and larger.",
        typical="true on A100/H100/RTX 30xx and newer",
    )
    fp16: bool = setting(
        False,
        label="fp16 mixed precision",
        group=PRECISION,
        what="Compute in float16 with dynamic loss scaling. For GPUs without bfloat16 (V100, T4, RTX "
        "20xx).",
        up="On: less memory and faster training; a narrow range means loss scaling and the "
        "occasional skipped step or NaN.",
        down="Off: avoids fp16 overflow problems; prefer bf16 where available.",
        typical="true on older GPUs, false when bf16 is available",
    )
    tf32: bool = setting(
        False,
        label="TF32 matmuls",
        group=PRECISION,
        what="Let Ampere and newer GPUs use TensorFloat-32 for float32 matrix multiplies.",
        up="On: float32 matmuls run several times faster with negligible accuracy loss.",
        down="Off: exact float32 matmuls.",
        typical="true on Ampere or newer GPUs",
    )
    gradient_checkpointing: bool = setting(
        False,
        label="Gradient checkpointing",
        group=PRECISION,
        what="Keep only each layer's input during the forward pass and recompute the rest during the "
        "backward pass.",
        up="On: activation memory drops to a fraction, allowing longer sequences or bigger batches; "
        "steps become roughly 20-30% slower.",
        down="Off: fastest steps, but activations of every layer stay in memory.",
        typical="true for 7B+ models and long sequences; false when memory is plentiful",
    )
    # --- Checkpoints & eval ----------------------------------------------------------------------
    save_strategy: Literal["no", "steps", "epoch", "best"] = setting(
        "steps",
        label="Save checkpoints",
        group=CHECKPOINTS,
        what="When checkpoints are written: every save_steps steps, at the end of each epoch, "
        "whenever the eval metric improves ('best'), or never.",
        up="Saving more often means less lost work after a crash and resumable runs.",
        down="'no' saves disk and time but a crash loses everything since the start.",
        typical="steps",
    )
    save_steps: Union[StrictInt, float] = setting(
        500,
        applies="training.save_strategy=steps",
        label="Save every",
        group=CHECKPOINTS,
        gt=0,
        le=MAX_STEPS,
        unit="steps",
        what="Steps between checkpoints when save_strategy is 'steps' (a float below 1 is a fraction "
        "of all steps).",
        up="Fewer checkpoints: less disk and time spent saving, more work lost on a crash.",
        down="More checkpoints: resume closer to where a crash happened, more disk and I/O.",
        typical="200-1000, or enough for a checkpoint every 15-30 minutes",
    )
    save_total_limit: int = setting(
        0,
        label="Keep checkpoints",
        group=CHECKPOINTS,
        ge=0,
        le=100_000,
        what="How many checkpoints are kept on disk; older ones are deleted. 0 keeps all.",
        up="More checkpoints to choose from or analyse, more disk used (a 7B full checkpoint with "
        "optimizer state is tens of GB).",
        down="Less disk; fewer points to go back to.",
        typical="2-3",
    )
    eval_strategy: Literal["no", "steps", "epoch"] = setting(
        "no",
        label="Evaluate",
        group=CHECKPOINTS,
        what="When the model is scored on the eval data: every eval_steps steps, each epoch, or never.",
        up="Evaluating shows overfitting as it happens and enables early stopping and "
        "best-model selection.",
        down="'no' saves the time evaluation takes.",
        typical="steps with an eval set, otherwise no",
    )
    eval_steps: Union[StrictInt, float] = setting(
        500,
        applies="training.eval_strategy=steps",
        label="Evaluate every",
        group=CHECKPOINTS,
        gt=0,
        le=MAX_STEPS,
        unit="steps",
        what="Steps between evaluations when eval_strategy is 'steps' (a float below 1 is a fraction "
        "of all steps).",
        up="Less frequent evaluation: faster training, coarser view of progress.",
        down="More frequent evaluation: closer monitoring of overfitting, more time spent evaluating.",
        typical="5-10 for small datasets, 50-100 or more for large ones",
        advice="Make it smaller when evaluation is quick and larger when it is slow.",
    )
    load_best_model_at_end: bool = setting(
        False,
        label="Load best at end",
        group=CHECKPOINTS,
        what="At the end, reload the checkpoint with the best eval metric instead of keeping the last "
        "one. Needs evaluation and saving on the same schedule.",
        up="On: the final model is the best one seen, not an overfitted last one.",
        down="Off: the final model is the last state.",
        typical="true whenever you evaluate",
    )
    metric_for_best_model: str = setting(
        "eval_loss",
        label="Best-model metric",
        group=CHECKPOINTS,
        applies=NEEDS_EVAL,
        what="The eval metric that decides the best checkpoint and early stopping.",
        up="A metric where higher is better (e.g. accuracy) is detected by name; loss-like names are minimised.",
        down="Keep eval_loss unless you compute other metrics.",
        typical="eval_loss",
    )
    early_stopping_patience: int = setting(
        0,
        label="Early stopping patience",
        group=CHECKPOINTS,
        ge=0,
        le=100_000,
        unit="evaluations",
        what="Stop training after this many evaluations without improvement of the best-model metric. "
        "0 disables early stopping.",
        up="More patience rides out noisy eval curves, at the risk of training past the best point.",
        down="Less patience stops sooner, saving time and avoiding overfitting, but may stop on noise.",
        typical="3-5 evaluations",
    )
    early_stopping_threshold: float = setting(
        0.0,
        applies="training.early_stopping_patience>0",
        label="Early stopping threshold",
        group=CHECKPOINTS,
        ge=0.0,
        le=1e6,
        what="How much the metric must improve to count as an improvement for early stopping.",
        up="A larger threshold ignores tiny gains and stops sooner.",
        down="0 counts any improvement.",
        typical="0.0-0.01",
    )
    output_dir: str = setting(
        "",
        label="Runs directory",
        group=CHECKPOINTS,
        what="The directory runs are created in; each run gets its own subdirectory "
        "<preset>-<timestamp> with its config, logs, checkpoints and final model. Empty: the runs "
        "home in your state directory (~/.local/state/tunedeck/runs). --runs-dir and "
        "$TUNEDECK_RUNS_DIR take precedence; every run is listed by `tunedeck runs` wherever it is.",
        up="",
        down="",
        typical="empty (the runs home), or a path on a large or shared disk, e.g. /scratch/me/runs",
    )
    # --- Logging ---------------------------------------------------------------------------------
    logging_steps: Union[StrictInt, float] = setting(
        10,
        label="Log every",
        group=LOGGING,
        gt=0,
        le=MAX_STEPS,
        unit="steps",
        what="Steps between logged training metrics (loss, learning rate, gradient norm, speed). A "
        "float below 1 is a fraction of all steps.",
        up="Logging less often keeps logs small and the curve coarse.",
        down="Logging more often gives a detailed curve at slightly more overhead.",
        typical="1 for tiny runs, 5-10 for small datasets, 50-100 for large ones",
        advice="Small datasets: log every 5-10 steps to follow changes closely; large datasets: every "
        "50-100 steps.",
    )
    report_to: Literal["none", "tensorboard", "wandb"] = setting(
        "none",
        label="Report to",
        group=LOGGING,
        what="An experiment tracker to send metrics to, besides tunedeck's own event log. Needs the "
        "tensorboard or wandb package; wandb reads WANDB_API_KEY from the environment.",
        up="Sending to a tracker gives shareable dashboards and comparisons across runs, at the cost of an extra "
        "dependency (and, for wandb, network access).",
        down="none keeps everything local: tunedeck's own monitor still shows every metric.",
        typical="none; tensorboard for local dashboards",
    )
