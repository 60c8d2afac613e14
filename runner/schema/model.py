"""[model]: which network to train, how to load it, and its shape when built from scratch."""

from __future__ import annotations

from typing import Literal

from runner.demo_spec import DEMO_MODEL

from ._field import Section, setting

ARCH = "model.from_scratch"  # architecture knobs only matter when building a new model


class ModelSection(Section):
    name_or_path: str = setting(
        DEMO_MODEL,
        label="Model",
        what="The model to start from: a Hugging Face Hub id (org/name), a local directory holding "
        "config.json and weights, or the built-in 'tunedeck:tiny-demo' that tunedeck builds on this "
        "machine without any download.",
        up="A larger base model knows more and usually fine-tunes to better quality, but needs more "
        "GPU memory, more time per step and a smaller batch.",
        down="A smaller base model trains faster and fits cheaper GPUs, at the cost of capacity: it "
        "learns complex tasks less well.",
        typical="0.5B-3B models for quick experiments, 7B-8B for most serious fine-tunes, 70B only "
        "with 4-bit loading and several large GPUs.",
        advice="Pick the smallest model that does the task acceptably; it is cheaper to iterate on "
        "hyperparameters there and scale up once the recipe works.",
    )
    tokenizer_name_or_path: str = setting(
        "",
        label="Tokenizer",
        what="Where to load the tokenizer from. Empty means the same place as the model.",
        up="Point it elsewhere only when the model directory lacks tokenizer "
        "files or when training from scratch with an existing tokenizer.",
        down="Leave empty for the model's own tokenizer, which is almost always what you want.",
        typical="empty; a hub id such as 'gpt2' when training from scratch",
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = setting(
        "auto",
        label="Weight dtype",
        what="The number format the weights are loaded in. 'auto' keeps the format stored in the "
        "checkpoint.",
        up="Higher precision (float32) represents weights more finely and is the safest numerically, "
        "but doubles memory and slows training compared with 16-bit.",
        down="16-bit formats (bfloat16, float16) halve weight memory and speed up modern GPUs, with a "
        "small risk of precision loss; bfloat16 has the range of float32 and rarely overflows.",
        typical="bfloat16 on Ampere or newer GPUs (A100, RTX 30xx/40xx, H100); float16 on older ones; "
        "float32 on CPU.",
    )
    trust_remote_code: bool = setting(
        False,
        label="Trust remote code",
        what="Allow the model repository to run its own Python code when loading. Off by default "
        "because that code runs with your permissions.",
        up="Turning it on is needed only for architectures not built into transformers; read the "
        "repository's code first.",
        down="Off keeps loading safe: only architectures shipped with transformers are used.",
        typical="false",
    )
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = setting(
        "sdpa",
        label="Attention kernel",
        what="Which attention implementation the model uses. 'sdpa' is PyTorch's fused attention, "
        "'flash_attention_2' needs the flash-attn package and a recent GPU, 'eager' is the plain "
        "reference code.",
        up="Moving to fused kernels (sdpa, flash_attention_2) avoids storing the full attention "
        "matrix, so long sequences use far less memory and run faster.",
        down="'eager' materialises a batch x heads x seq x seq matrix: memory grows with the square "
        "of sequence length. Use it only for debugging or for models that need it.",
        typical="sdpa; flash_attention_2 with bf16/fp16 on Ampere or newer when installed",
    )
    from_scratch: bool = setting(
        False,
        label="Train from scratch",
        what="Build a new, randomly initialised model from the architecture fields below instead "
        "of loading pretrained weights.",
        up="On: pre-training. Needs far more data and steps than fine-tuning and a higher learning "
        "rate (around 1e-4 or more) with a long warmup.",
        down="Off: fine-tune the pretrained weights named above, which is what most users want.",
        typical="false for fine-tuning; true for pre-training experiments",
    )
    model_type: Literal["llama", "mistral", "qwen2", "gemma2", "phi3", "gpt2"] = setting(
        "llama",
        label="Architecture",
        applies=ARCH,
        what="The architecture family of the new model. GPT-style decoders (llama, mistral, qwen2, "
        "gemma2, phi3, gpt2) all generate text left to right.",
        up="Llama-style models use rotary positions, RMSNorm and gated MLPs; gpt2 uses "
        "learned positions and LayerNorm.",
        down="Choose the family whose tooling and tokenizer you plan to reuse.",
        typical="llama",
    )
    num_hidden_layers: int = setting(
        12,
        label="Layers",
        applies=ARCH,
        ge=1,
        le=512,
        what="How many transformer blocks are stacked.",
        up="More layers give the model depth for more complex patterns, but add memory and time in "
        "proportion and are harder to train stably.",
        down="Fewer layers train faster and use less memory but limit what the model can learn.",
        typical="12 (base-size), 24 (large), 32 (7B-class), 80 (70B-class)",
    )
    hidden_size: int = setting(
        768,
        label="Hidden size",
        applies=ARCH,
        ge=8,
        le=65536,
        what="The width of the vector each token is represented by inside the model.",
        up="A wider model has more capacity; parameters and compute grow roughly with its square.",
        down="A narrower model is cheaper and faster, with less capacity.",
        typical="768 for base models, 1024 for large, 4096 for 7B-class",
        advice="Start from a standard size and adjust to the amount of data you have.",
    )
    intermediate_size: int = setting(
        3072,
        label="MLP size",
        applies=ARCH,
        ge=8,
        le=262144,
        what="The inner width of each block's feed-forward network.",
        up="A larger feed-forward network adds capacity and most of a block's parameters.",
        down="A smaller one saves memory and compute.",
        typical="4x hidden_size for gpt2-style models, about 2.7x for llama-style gated MLPs",
    )
    num_attention_heads: int = setting(
        12,
        label="Attention heads",
        applies=ARCH,
        ge=1,
        le=1024,
        what="How many attention heads each layer splits the hidden vector into. hidden_size must be "
        "divisible by it.",
        up="More heads let a layer attend to more patterns at once, each over a smaller slice.",
        down="Fewer heads give each head a wider slice and fewer parallel patterns.",
        typical="hidden_size / 64 (12 for 768, 32 for 4096)",
    )
    num_key_value_heads: int = setting(
        12,
        label="Key/value heads",
        applies=ARCH,
        ge=1,
        le=1024,
        what="Key/value heads shared by the query heads (grouped-query attention). Equal to the "
        "attention heads means ordinary multi-head attention; it must divide num_attention_heads.",
        up="More key/value heads give slightly better quality at more memory for the KV cache.",
        down="Fewer key/value heads shrink the KV cache and speed up generation.",
        typical="equal to attention heads for small models; 8 for Llama-3 8B/70B",
    )
    vocab_size: int = setting(
        32000,
        label="Vocabulary",
        applies=ARCH,
        ge=16,
        le=1_048_576,
        what="How many distinct tokens the embedding and output layers cover. Must be at least the "
        "tokenizer's vocabulary.",
        up="A larger vocabulary encodes text in fewer tokens but makes the embedding and the logits "
        "(batch x sequence x vocab) much larger.",
        down="A smaller vocabulary saves memory in the embedding and logits, with longer token "
        "sequences for the same text.",
        typical="32000 (Llama 2, Mistral), 50257 (GPT-2), 128256 (Llama 3), 151936 (Qwen2.5)",
    )
    max_position_embeddings: int = setting(
        2048,
        label="Max positions",
        applies=ARCH,
        ge=16,
        le=1_048_576,
        what="The longest sequence the new model is built for.",
        up="A longer limit allows longer contexts; for gpt2 it adds a learned position table.",
        down="A shorter limit saves a little memory; sequences longer than it cannot be used.",
        typical="1024 or 2048",
    )
    hidden_dropout: float = setting(
        0.0,
        label="Dropout",
        ge=0.0,
        lt=1.0,
        what="The fraction of activations randomly zeroed in each block during training (residual and "
        "embedding dropout), a regulariser against overfitting.",
        up="More dropout fights overfitting on small data but slows learning; above 0.3 it usually "
        "hurts.",
        down="Less dropout learns faster; large pre-training runs and most fine-tunes use none.",
        typical="0.1 when training from scratch on limited data (0.1-0.5 is the usual span), 0.0 "
        "for fine-tuning",
    )
    attention_dropout: float = setting(
        0.0,
        label="Attention dropout",
        ge=0.0,
        lt=1.0,
        what="The fraction of attention weights randomly zeroed during training, regularising what "
        "each token attends to.",
        up="More attention dropout regularises attention patterns; too much makes the model ignore "
        "context.",
        down="Less (or none) learns attention faster and is standard for fine-tuning.",
        typical="0.0 for fine-tuning; 0.1 when pre-training small models",
    )
