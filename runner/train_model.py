"""Model and tokenizer for the trainer: pretrained, from scratch or the demo; quantized; LoRA."""

from __future__ import annotations

from dataclasses import dataclass

from runner.demo_spec import DEMO_MODEL
from runner.diagnose import MissingDependency, ModelNotFound

# Where each architecture family keeps its dropout probabilities in its transformers config.
HIDDEN_DROPOUT_KEYS = ("resid_pdrop", "embd_pdrop", "hidden_dropout", "hidden_dropout_prob")
ATTENTION_DROPOUT_KEYS = ("attention_dropout", "attn_pdrop", "attention_probs_dropout_prob")


@dataclass
class ModelInfo:
    params_total: int
    params_trainable: int
    warnings: list[str]

    @property
    def trainable_percent(self) -> float:
        return 100.0 * self.params_trainable / max(1, self.params_total)


def resolve_name(name: str) -> str:
    if name == DEMO_MODEL:
        from runner.train_demo import demo_model_dir

        return str(demo_model_dir())
    return name


def load_tokenizer(config):
    from transformers import AutoTokenizer

    m = config.model
    name = resolve_name(m.tokenizer_name_or_path or m.name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=m.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelNotFound(f"cannot load the tokenizer from {name!r}: {exc}") from exc
    if tokenizer.pad_token is None:  # many causal LMs ship without one; eos is the usual stand-in
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def apply_dropout(model_config, hidden: float, attention: float) -> list[str]:
    """Set the dropout fields the architecture has; warn about the ones it lacks."""
    warnings = []
    for value, keys, what in ((hidden, HIDDEN_DROPOUT_KEYS, "model.hidden_dropout"),
                              (attention, ATTENTION_DROPOUT_KEYS, "model.attention_dropout")):
        present = [k for k in keys if hasattr(model_config, k)]
        for key in present:
            setattr(model_config, key, value)
        if value > 0 and not present:
            warnings.append(f"{what} = {value} ignored: {model_config.model_type} has no such dropout")
    return warnings


def _torch_dtype(name: str):
    import torch

    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}.get(name, "auto")


def _quantization_config(config, cuda: bool):
    q = config.quantization
    if not (q.load_in_4bit or q.load_in_8bit):
        return None
    bits = "4-bit" if q.load_in_4bit else "8-bit"
    if not cuda:
        raise MissingDependency(f"{bits} loading (quantization.load_in_{bits[0]}bit) needs bitsandbytes on an "
                                "NVIDIA GPU with CUDA, and no CUDA GPU is available")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise MissingDependency(f"{bits} loading needs the bitsandbytes package: pip install bitsandbytes") from exc
    from transformers import BitsAndBytesConfig

    if q.load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=q.bnb_4bit_quant_type,
        bnb_4bit_compute_dtype=_torch_dtype(q.bnb_4bit_compute_dtype),
        bnb_4bit_use_double_quant=q.bnb_4bit_use_double_quant,
    )


def load_model(config, tokenizer, *, cuda: bool, device_index: int = 0):
    """The model ready for the Trainer (quantized and wrapped with LoRA as configured) and its counts."""
    from transformers import AutoConfig, AutoModelForCausalLM

    m = config.model
    warnings: list[str] = []
    if m.from_scratch:
        arch = AutoConfig.for_model(
            m.model_type,
            vocab_size=max(m.vocab_size, len(tokenizer)),
            hidden_size=m.hidden_size,
            intermediate_size=m.intermediate_size,
            num_hidden_layers=m.num_hidden_layers,
            num_attention_heads=m.num_attention_heads,
            num_key_value_heads=m.num_key_value_heads,
            max_position_embeddings=m.max_position_embeddings,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        if m.model_type == "gpt2":  # gpt2 spells its sizes differently
            arch.n_embd, arch.n_layer, arch.n_head = m.hidden_size, m.num_hidden_layers, m.num_attention_heads
            arch.n_inner, arch.n_positions = m.intermediate_size, m.max_position_embeddings
        warnings += apply_dropout(arch, m.hidden_dropout, m.attention_dropout)
        arch._attn_implementation = m.attn_implementation
        model = AutoModelForCausalLM.from_config(arch, dtype=_torch_dtype(m.dtype) if m.dtype != "auto" else None)
    else:
        name = resolve_name(m.name_or_path)
        try:
            arch = AutoConfig.from_pretrained(name, trust_remote_code=m.trust_remote_code)
        except (OSError, ValueError) as exc:
            raise ModelNotFound(f"model {m.name_or_path!r} not found: {exc}") from exc
        warnings += apply_dropout(arch, m.hidden_dropout, m.attention_dropout)
        quant = _quantization_config(config, cuda)
        kwargs = dict(config=arch, dtype=_torch_dtype(m.dtype), attn_implementation=m.attn_implementation,
                      trust_remote_code=m.trust_remote_code)
        if quant is not None:
            kwargs.update(quantization_config=quant, device_map={"": device_index})
        try:
            model = AutoModelForCausalLM.from_pretrained(name, **kwargs)
        except ImportError as exc:
            raise MissingDependency(str(exc)) from exc
        except OSError as exc:
            raise ModelNotFound(f"model {m.name_or_path!r}: {exc}") from exc
        if quant is not None:
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=config.training.gradient_checkpointing,
                gradient_checkpointing_kwargs={"use_reentrant": False})
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    if config.lora.enabled:
        model = _add_lora(model, config)
    total, trainable = count_parameters(model)
    return model, ModelInfo(total, trainable, warnings)


def _add_lora(model, config):
    from peft import LoraConfig, get_peft_model

    lora = config.lora
    peft_config = LoraConfig(
        task_type="CAUSAL_LM",
        r=lora.r,
        lora_alpha=lora.lora_alpha,
        lora_dropout=lora.lora_dropout,
        target_modules=lora.target_modules,
        bias=lora.bias,
        use_rslora=lora.use_rslora,
        use_dora=lora.use_dora,
    )
    if config.training.gradient_checkpointing:
        # Checkpointed blocks need inputs that require grad when the embeddings are frozen.
        model.enable_input_require_grads()
    return get_peft_model(model, peft_config)


def count_parameters(model) -> tuple[int, int]:
    total = trainable = 0
    for p in model.parameters():
        n = p.numel()
        if hasattr(p, "quant_storage") or p.__class__.__name__ == "Params4bit":
            n *= 2  # 4-bit weights are stored two per byte-sized element
        total += n
        trainable += n if p.requires_grad else 0
    return total, trainable
