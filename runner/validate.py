"""Cross-field rules: combinations that are wrong (errors) or risky (warnings).

Single-field types, ranges and choices are enforced by the schema itself; these
rules need more than one field, or knowledge of the machine (`Context`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from runner import value_checks
from runner.problems import Problem
from runner.schema import Config
from runner.schema.launch import resolve_mixed_precision

from runner.target import BNB_OPTIMIZERS, gpu_only_settings, target_cuda  # noqa: F401 - re-exported

# Above these learning rates a run is likely to diverge (fine-tuning full weights, adapters, anything).
RISKY_LR_FULL_FINETUNE = 1e-3
RISKY_LR_ADAPTERS = 1e-3
RISKY_LR_ANY = 1e-2
TINY_LR = 1e-7
LONG_WARMUP_RATIO = 0.3
MANY_EPOCHS_FINETUNE = 10
HIGH_DROPOUT = 0.5
HIGH_WEIGHT_DECAY = 0.1


@dataclass(frozen=True)
class Context:
    """What is known about this machine. None means unknown: the "on this machine" rules are skipped.

    `launching`: the run is about to start here, so what this machine lacks is an error; otherwise
    (editing, saving, exporting, submitting to SLURM) it is a warning "on this machine: ...".
    """

    cuda_available: bool | None = None
    gpu_count: int | None = None
    launching: bool = True


def context_from_report(report, *, launching: bool = True) -> Context:
    """The Context for a GPU probe report (runner.gpu.probe); unknown hardware when NVML could not tell.
    The one builder: the CLI, the launcher and the editor all go through it."""
    if report is None or not hasattr(report, "driver") or "not available" in (getattr(report, "reason", "") or ""):
        return Context(launching=launching)
    return Context(cuda_available=bool(report.available), gpu_count=len(report.gpus), launching=launching)


Rule = Callable[[Config, Context], Iterator[Problem]]
RULES: list[Rule] = []


def rule(fn: Rule) -> Rule:
    RULES.append(fn)
    return fn


def here(ctx: Context, key: str, message: str, hint: str = "") -> Problem:
    """A problem of this machine, not of the preset: blocks only launching here."""
    if ctx.launching:
        return Problem("error", message, key=key, hint=hint)
    return Problem("warning", f"on this machine: {message} (blocks only launching here)", key=key, hint=hint)


def error(key: str, message: str, hint: str = "") -> Problem:
    return Problem("error", message, key=key, hint=hint)


def warning(key: str, message: str, hint: str = "") -> Problem:
    return Problem("warning", message, key=key, hint=hint)


def check(config: Config, context: Context | None = None) -> list[Problem]:
    """Every cross-field error and warning for this config, errors first."""
    context = context or Context()
    found = [p for r in RULES for p in r(config, context)]
    return sorted(found, key=lambda p: not p.is_error)


@rule
def _precision(c: Config, ctx: Context) -> Iterator[Problem]:
    t = c.training
    if t.bf16 and t.fp16:
        yield error("training.fp16", "fp16 and bf16 are both on", "turn one off: bf16 on Ampere or newer GPUs, fp16 on older ones")
    mp = c.launch.mixed_precision
    wanted = resolve_mixed_precision("auto", t.bf16, t.fp16)
    if mp != "auto" and mp != wanted:
        yield error("launch.mixed_precision", f"'{mp}' contradicts training.bf16={t.bf16} / training.fp16={t.fp16}",
                    f"set it to 'auto' or '{wanted}'")
    if t.tf32 and (c.launch.device == "cpu" or ctx.cuda_available is False):
        yield warning("training.tf32", "tf32 has no effect without an NVIDIA GPU")


@rule
def _device(c: Config, ctx: Context) -> Iterator[Problem]:
    """GPU-only settings against the target (launch.device) and, when known, against this machine."""
    gpu_only = gpu_only_settings(c)
    if c.launch.device == "cpu":
        for key, message, hint in gpu_only:
            yield error(key, f"{message}, but launch.device is 'cpu'", f"{hint}, or set launch.device = 'cuda'")
        return
    if ctx.cuda_available is not False or not target_cuda(c, ctx.cuda_available):
        return
    for key, message, hint in gpu_only:
        yield here(ctx, key, f"{message} and none was found", hint)
    if not gpu_only:
        yield here(ctx, "launch.device", "the preset targets a CUDA GPU and none was found",
                   "set launch.device = 'cpu' to train on this machine's CPU")


@rule
def _quantization(c: Config, ctx: Context) -> Iterator[Problem]:
    q = c.quantization
    kbit = q.load_in_4bit or q.load_in_8bit
    if q.load_in_4bit and q.load_in_8bit:
        yield error("quantization.load_in_8bit", "load_in_4bit and load_in_8bit are both on", "choose one")
    if kbit and not c.lora.enabled:
        yield error("lora.enabled", "a 4-bit or 8-bit model cannot be trained directly: it needs LoRA adapters",
                    "set lora.enabled = true, or turn quantization off for full fine-tuning")
    if kbit and c.model.from_scratch:
        yield error("quantization.load_in_4bit" if q.load_in_4bit else "quantization.load_in_8bit",
                    "quantized loading applies to pretrained weights, not to a model trained from scratch")
    if q.load_in_4bit and c.training.bf16 and q.bnb_4bit_compute_dtype == "float16":
        yield warning("quantization.bnb_4bit_compute_dtype", "compute dtype float16 while training in bf16",
                      "use bfloat16 to match")


@rule
def _lora(c: Config, ctx: Context) -> Iterator[Problem]:
    if c.lora.enabled and c.model.from_scratch:
        yield warning("lora.enabled", "LoRA on a randomly initialised model trains only small adapters on noise",
                      "train from scratch with full weights (lora.enabled = false)")
    if c.lora.enabled and isinstance(c.lora.target_modules, list) and not c.lora.target_modules:
        yield error("lora.target_modules", "the list of target modules is empty", "use 'all-linear' or name modules such as q_proj, v_proj")
    if c.lora.enabled and c.lora.use_dora and (c.quantization.load_in_8bit):
        yield warning("lora.use_dora", "DoRA with 8-bit loading is slow and poorly supported")


@rule
def _steps(c: Config, ctx: Context) -> Iterator[Problem]:
    t = c.training
    if t.max_steps <= 0 and t.num_train_epochs <= 0:
        yield error("training.max_steps", "neither max_steps nor num_train_epochs is set, so training would do nothing",
                    "set num_train_epochs > 0 or max_steps > 0")
    if isinstance(t.warmup_steps, float) and t.warmup_steps >= 1:
        yield error("training.warmup_steps", f"a warmup ratio must be below 1, got {t.warmup_steps}",
                    "write a fraction such as 0.05, or a whole number of steps such as 100")
    elif isinstance(t.warmup_steps, float) and t.warmup_steps > LONG_WARMUP_RATIO:
        yield warning("training.warmup_steps", f"warmup covers {t.warmup_steps:.0%} of training", "0.03-0.1 is usual")
    if t.max_steps > 0 and isinstance(t.warmup_steps, int) and t.warmup_steps >= t.max_steps:
        yield error("training.warmup_steps", f"warmup ({t.warmup_steps} steps) is as long as the whole run ({t.max_steps} steps)",
                    "shorten the warmup or raise max_steps")
    if t.max_steps <= 0 and t.num_train_epochs > MANY_EPOCHS_FINETUNE and not c.model.from_scratch:
        yield warning("training.num_train_epochs", f"{t.num_train_epochs:g} epochs of fine-tuning is likely to overfit",
                      "1-5 epochs is usual; use an eval set with early stopping")


@rule
def _learning_rate(c: Config, ctx: Context) -> Iterator[Problem]:
    lr = c.training.learning_rate
    if lr >= RISKY_LR_ANY:
        yield warning("training.learning_rate", f"learning rate {lr:g} is very high and likely to diverge", "1e-5 to 3e-4 is usual")
    elif not c.model.from_scratch and not c.lora.enabled and lr > RISKY_LR_FULL_FINETUNE:
        yield warning("training.learning_rate", f"learning rate {lr:g} is high for full fine-tuning and may erase what the model knows",
                      "1e-5 to 5e-5 is usual for full fine-tuning")
    elif c.lora.enabled and lr > RISKY_LR_ADAPTERS:
        yield warning("training.learning_rate", f"learning rate {lr:g} is high for LoRA", "1e-4 to 3e-4 is usual")
    if lr < TINY_LR:
        yield warning("training.learning_rate", f"learning rate {lr:g} is so low the model will barely change")


@rule
def _evaluation(c: Config, ctx: Context) -> Iterator[Problem]:
    t, d = c.training, c.data
    has_eval_data = bool(d.eval_path) or d.eval_split > 0
    if d.eval_path and d.eval_split > 0:
        yield error("data.eval_split", "both eval_path and eval_split are set", "use a separate eval file or a split, not both")
    if t.eval_strategy != "no" and not has_eval_data:
        yield error("training.eval_strategy", f"evaluation every {t.eval_strategy} but there is no eval data",
                    "set data.eval_path or data.eval_split (e.g. 0.05)")
    if has_eval_data and t.eval_strategy == "no":
        yield warning("training.eval_strategy", "eval data is set but evaluation is off", "set eval_strategy = 'steps' or 'epoch'")
    if t.load_best_model_at_end:
        if t.eval_strategy == "no":
            yield error("training.load_best_model_at_end", "needs evaluation, but eval_strategy is 'no'", "set eval_strategy")
        elif t.save_strategy not in (t.eval_strategy, "best"):
            yield error("training.save_strategy", f"load_best_model_at_end needs saving on the evaluation schedule: save_strategy is "
                        f"'{t.save_strategy}' but eval_strategy is '{t.eval_strategy}'", f"set save_strategy = '{t.eval_strategy}'")
        elif t.save_strategy == "steps" and t.eval_steps >= 1 and t.save_steps % t.eval_steps:
            yield error("training.save_steps", f"save_steps ({t.save_steps:g}) must be a multiple of eval_steps ({t.eval_steps:g}) "
                        "for load_best_model_at_end", "make save_steps a multiple of eval_steps")
    if t.early_stopping_patience > 0:
        if t.eval_strategy == "no":
            yield error("training.early_stopping_patience", "early stopping needs evaluation, but eval_strategy is 'no'",
                        "set eval_strategy and eval data, or set patience to 0")
        elif not t.load_best_model_at_end:
            yield error("training.early_stopping_patience", "early stopping needs load_best_model_at_end = true",
                        "turn on training.load_best_model_at_end")
    if t.save_strategy == "best" and t.eval_strategy == "no":
        yield error("training.save_strategy", "save_strategy 'best' needs evaluation", "set eval_strategy")


@rule
def _data(c: Config, ctx: Context) -> Iterator[Problem]:
    d = c.data
    if d.packing and d.padding == "max_length":
        yield warning("data.padding", "padding to max_length has no effect with packing", "use 'longest'")
    if c.model.from_scratch and d.max_seq_length > c.model.max_position_embeddings:
        yield error("data.max_seq_length", f"{d.max_seq_length} is longer than the new model's max_position_embeddings "
                    f"({c.model.max_position_embeddings})", "raise model.max_position_embeddings or shorten sequences")
    if not d.path.strip() and not d.datasets:
        yield error("data.path", "no training data given", "a .jsonl/.json/.csv/.parquet file, a directory or a hub dataset id")
    yield from _data_settings(c)


def _data_settings(c: Config) -> Iterator[Problem]:
    """The chat template, role names and dataset mixture (files themselves: runner.data_check)."""
    from runner.prompts import CHAT_TEMPLATES, TEMPLATE_SUFFIXES, is_named_template
    from runner.problems import did_you_mean
    from runner.demo_spec import DEMO_DATA
    from runner.schema.data import KNOWN_ROLES

    d = c.data
    template = d.chat_template.strip()
    if not is_named_template(template) and "/" not in template and not template.endswith(TEMPLATE_SUFFIXES):
        guess = did_you_mean(template, ["tokenizer", *CHAT_TEMPLATES])
        yield error("data.chat_template", f"'{template}' is not a built-in template or a Jinja file path",
                    (f"did you mean '{guess}'? " if guess else "") + f"allowed: 'tokenizer', {', '.join(CHAT_TEMPLATES)}, "
                    "or a path such as templates/mine.jinja")
    for entry in d.role_map:
        name, sep, role = (part.strip() for part in entry.partition("="))
        if not sep or not name or role not in KNOWN_ROLES:
            guess = did_you_mean(role, KNOWN_ROLES) if sep else None
            yield error("data.role_map", f"'{entry}' is not a 'yours=template' pair with a template role",
                        (f"did you mean '{name}={guess}'? " if guess else "") + f"e.g. 'gpt=assistant'; roles: "
                        f"{', '.join(KNOWN_ROLES)}")
    for role in d.roles_to_train:
        if role not in KNOWN_ROLES:
            guess = did_you_mean(role, KNOWN_ROLES)
            yield error("data.roles_to_train", f"'{role}' is not a chat role",
                        (f"did you mean '{guess}'? " if guess else "") + f"roles: {', '.join(KNOWN_ROLES)}")
    if d.completion_only_loss and not d.roles_to_train and "chat" in {d.format, *(s.format for s in d.datasets)}:
        yield error("data.roles_to_train", "no role is trained, so chat rows have nothing to learn",
                    "list 'assistant', or turn off data.completion_only_loss")
    for i, source in enumerate(d.datasets, start=1):
        if not source.path.strip():
            yield error("data.datasets", f"dataset {i} of [[data.datasets]] has no path", "set path = \"...\"")
    if d.datasets and d.path not in ("", DEMO_DATA):
        yield warning("data.path", f"data.path ({d.path}) is not used: [[data.datasets]] lists the training data",
                      "add it as one more [[data.datasets]] entry, or remove it")


@rule
def _architecture(c: Config, ctx: Context) -> Iterator[Problem]:
    m = c.model
    if not m.from_scratch:
        return
    if m.hidden_size % m.num_attention_heads:
        yield error("model.num_attention_heads", f"hidden_size {m.hidden_size} is not divisible by {m.num_attention_heads} heads",
                    "pick heads so that hidden_size / heads is a whole number (64 or 128 per head is usual)")
    if m.num_attention_heads % m.num_key_value_heads:
        yield error("model.num_key_value_heads", f"{m.num_key_value_heads} key/value heads do not divide {m.num_attention_heads} "
                    "attention heads", "use a divisor of num_attention_heads")
    if m.model_type == "gpt2" and m.num_key_value_heads != m.num_attention_heads:
        yield error("model.num_key_value_heads", "gpt2 has no grouped-query attention", "set it equal to num_attention_heads")
    if max(m.hidden_dropout, m.attention_dropout) > HIGH_DROPOUT:
        yield warning("model.hidden_dropout", "dropout above 0.5 usually stops a model from learning", "0.1 is usual")


@rule
def _model(c: Config, ctx: Context) -> Iterator[Problem]:
    m = c.model
    if not m.name_or_path.strip() and not m.from_scratch:
        yield error("model.name_or_path", "no model given", "a hub id like Qwen/Qwen2.5-0.5B, a local directory, or tunedeck:tiny-demo")
    if m.trust_remote_code:
        yield warning("model.trust_remote_code", "the model repository's own Python code will run on this machine",
                      "read that code first, or use a model built into transformers")
    if m.attn_implementation == "flash_attention_2":
        if not (c.training.bf16 or c.training.fp16 or m.dtype in ("bfloat16", "float16")):
            yield warning("model.attn_implementation", "flash_attention_2 only runs in bf16/fp16", "turn on bf16 or fp16")
    if c.training.weight_decay > HIGH_WEIGHT_DECAY:
        yield warning("training.weight_decay", f"weight decay {c.training.weight_decay:g} is strong", "0.01-0.1 is usual")
    if c.training.max_grad_norm == 0:
        yield warning("training.max_grad_norm", "gradient clipping is off, so one bad batch can blow up training", "1.0 is usual")


@rule
def _launch(c: Config, ctx: Context) -> Iterator[Problem]:
    la = c.launch
    if la.num_machines > 1 and not la.main_process_ip and ctx.launching and ctx.cuda_available is not None:
        # Only launching here needs it in the preset: SLURM (the sbatch export, `run --slurm`) takes it from
        # the allocation, and the accelerate command and config exports ask for it themselves.
        yield error("launch.main_process_ip", f"{la.num_machines} machines need the main node's address to launch here",
                    "set main_process_ip, or submit through SLURM, which takes it from the allocation")
    if la.machine_rank >= la.num_machines:
        yield error("launch.machine_rank", f"rank {la.machine_rank} is out of range for {la.num_machines} machine(s)",
                    f"use 0..{la.num_machines - 1}")
    ids = la.gpu_ids.strip()
    if ids != "all":
        parts = [p.strip() for p in ids.split(",")]
        if not parts or not all(p.isdigit() for p in parts):
            yield error("launch.gpu_ids", f"'{la.gpu_ids}' is not a list of GPU indices", "write 'all' or indices like '0,1'")
        elif len(parts) < la.num_processes:
            yield error("launch.num_processes", f"{la.num_processes} processes but only {len(parts)} GPU id(s) listed",
                        "list one GPU per process")
        elif ctx.gpu_count and max(int(p) for p in parts) >= ctx.gpu_count:
            yield here(ctx, "launch.gpu_ids", f"GPU {max(int(p) for p in parts)} does not exist ({ctx.gpu_count} found)")
    if la.strategy == "none" and la.num_processes > 1:
        yield warning("launch.strategy", f"{la.num_processes} processes with strategy 'none' run as plain data parallel (DDP)")
    if la.strategy in ("fsdp", "deepspeed") and la.num_processes * la.num_machines == 1:
        yield warning("launch.strategy", f"{la.strategy} with a single process shards nothing", "use 'none' on one GPU")
    if ctx.gpu_count and la.num_processes > ctx.gpu_count and target_cuda(c, ctx.cuda_available):
        yield here(ctx, "launch.num_processes", f"{la.num_processes} processes but only {ctx.gpu_count} GPU(s) on this machine")
    if la.deepspeed_config.strip() and la.strategy != "deepspeed":
        yield warning("launch.deepspeed_config", f"a DeepSpeed config file is set but launch.strategy is "
                      f"'{la.strategy}', so it is not used", "set launch.strategy = 'deepspeed' or clear the file")


@rule
def _generation(c: Config, ctx: Context) -> Iterator[Problem]:
    g = c.generation
    if g.prompts and g.do_sample and g.temperature == 0:
        yield warning("generation.temperature", "temperature 0 with sampling on", "turn do_sample off for greedy output")


@rule
def _values(c: Config, ctx: Context) -> Iterator[Problem]:
    """Control characters in any string; path-shaped values that no file system takes (runner/value_checks.py)."""
    yield from value_checks.problems(c)


def machine_context(*, launching: bool = True) -> Context:
    """What this machine offers, from the GPU probe (NVML); never raises."""
    try:
        from runner.gpu import probe

        report = probe()
    except Exception:  # noqa: BLE001 - a broken probe means unknown hardware
        return Context(launching=launching)
    return context_from_report(report, launching=launching)
