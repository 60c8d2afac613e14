"""Exact parameter counts: the module layout of each family, LoRA/DoRA adapters on any targets.

The layouts mirror transformers' modeling code (llama, mistral, qwen2, gemma2, phi3, gpt2) and the
adapter counts mirror peft's LoRA layers; tests check both against real instantiated models.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.problems import did_you_mean

from .architecture import Architecture, EstimateError

ALL_LINEAR = "all-linear"


@dataclass(frozen=True)
class Linear:
    """One linear (or gpt2 Conv1D) layer inside a transformer block."""

    path: str  # module path inside a block, e.g. "self_attn.q_proj"
    in_features: int
    out_features: int
    bias: bool

    @property
    def leaf(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def params(self) -> int:
        return self.in_features * self.out_features + (self.out_features if self.bias else 0)  # W + b


@dataclass(frozen=True)
class Layout:
    """Where the parameters of a model sit, as needed for counts and memory."""

    block_prefix: str  # "model.layers." / "transformer.h." (then the layer index)
    linears: tuple[Linear, ...]  # per block
    block_norm_weights: int  # norm scale parameters per block
    block_norm_biases: int  # LayerNorm bias parameters per block (gpt2)
    embed_name: str  # full module name of the token embedding
    embedding: int  # token embedding (+ learned positions for gpt2)
    final_norm_weights: int
    final_norm_biases: int
    head: int  # output projection parameters, 0 when tied to the embedding
    num_layers: int

    @property
    def block_params(self) -> int:
        return sum(lin.params for lin in self.linears) + self.block_norm_weights + self.block_norm_biases

    @property
    def block_linear_weights(self) -> int:
        return sum(lin.in_features * lin.out_features for lin in self.linears)

    @property
    def block_biases(self) -> int:
        return sum(lin.out_features for lin in self.linears if lin.bias) + self.block_norm_biases

    @property
    def total(self) -> int:
        # every block, the embeddings, the final norm and an untied head
        return (self.num_layers * self.block_params + self.embedding + self.final_norm_weights
                + self.final_norm_biases + self.head)

    @property
    def largest_linear(self) -> Linear:
        return max(self.linears, key=lambda lin: lin.in_features * lin.out_features)


def layout(arch: Architecture) -> Layout:
    h, i, v = arch.hidden_size, arch.intermediate_size, arch.vocab_size
    q = arch.num_heads * arch.head_dim  # query width (differs from h when head_dim != h / heads)
    kv = arch.num_kv_heads * arch.head_dim  # key/value width under grouped-query attention
    head = 0 if arch.tie_word_embeddings else h * v  # untied lm_head: hidden -> vocab, no bias
    if arch.family == "gpt2":
        linears = (
            Linear("attn.c_attn", h, 3 * h, True),  # fused q, k, v
            Linear("attn.c_proj", h, h, True),
            Linear("mlp.c_fc", h, i, True),
            Linear("mlp.c_proj", i, h, True),
        )
        return Layout("transformer.h.", linears, 2 * h, 2 * h, "transformer.wte",
                      v * h + arch.max_position_embeddings * h,  # token + learned position tables
                      h, h, head, arch.num_layers)
    if arch.family == "phi3":
        linears = (
            Linear("self_attn.qkv_proj", h, q + 2 * kv, False),  # fused q, k, v
            Linear("self_attn.o_proj", q, h, False),
            Linear("mlp.gate_up_proj", h, 2 * i, False),  # fused gate and up
            Linear("mlp.down_proj", i, h, False),
        )
        norms = 2
    else:
        qkv_bias = arch.attention_bias  # qwen2: always on q/k/v, never on o
        o_bias = arch.attention_bias and arch.family != "qwen2"
        linears = (
            Linear("self_attn.q_proj", h, q, qkv_bias),
            Linear("self_attn.k_proj", h, kv, qkv_bias),
            Linear("self_attn.v_proj", h, kv, qkv_bias),
            Linear("self_attn.o_proj", q, h, o_bias),
            Linear("mlp.gate_proj", h, i, arch.mlp_bias),
            Linear("mlp.up_proj", h, i, arch.mlp_bias),
            Linear("mlp.down_proj", i, h, arch.mlp_bias),
        )
        norms = 4 if arch.family == "gemma2" else 2  # gemma2 adds pre/post feed-forward norms
    return Layout("model.layers.", linears, norms * h, 0, "model.embed_tokens", v * h, h, 0, head, arch.num_layers)


@dataclass(frozen=True)
class AdapterPlan:
    """Which modules get LoRA adapters and what that adds."""

    per_block: tuple[tuple[Linear, int], ...]  # (linear, how many blocks it is adapted in)
    embedding: bool  # the token embedding is a target
    head: bool  # the output projection is a target
    params: int  # adapter parameters added (A, B and DoRA magnitudes)
    rank: int
    unmatched: tuple[str, ...]  # requested names that matched nothing


def _matches(full_name: str, target: str) -> bool:
    # peft's rule: the whole name, or a suffix starting at a module boundary
    return full_name == target or full_name.endswith("." + target)


def plan_adapters(arch: Architecture, lay: Layout, targets: str | list[str], r: int, dora: bool) -> AdapterPlan:
    """LoRA adapters on `targets` (peft's matching); raises EstimateError when none matches."""
    h, v = arch.hidden_size, arch.vocab_size
    if isinstance(targets, str):  # "all-linear": every block linear, never the output head
        per_block = tuple((lin, lay.num_layers) for lin in lay.linears)
        embedding = head = False
        unmatched: tuple[str, ...] = ()
    else:
        counts = {lin.path: 0 for lin in lay.linears}
        hit: set[str] = set()
        for target in targets:
            for lin in lay.linears:
                if "." not in target:  # a bare name can only match a module's own name
                    n = lay.num_layers if lin.leaf == target else 0
                else:
                    n = sum(_matches(f"{lay.block_prefix}{k}.{lin.path}", target) for k in range(lay.num_layers))
                if n:
                    hit.add(target)
                    counts[lin.path] = lay.num_layers if n == lay.num_layers else max(counts[lin.path], n)
        embedding = any(_matches(lay.embed_name, t) for t in targets)
        head = any(_matches("lm_head", t) for t in targets)  # allowed when named explicitly
        hit |= {t for t in targets if _matches(lay.embed_name, t) or _matches("lm_head", t)}
        unmatched = tuple(t for t in targets if t not in hit)
        per_block = tuple((lin, counts[lin.path]) for lin in lay.linears if counts[lin.path])
        if not per_block and not embedding and not head:
            names = sorted({lin.leaf for lin in lay.linears})
            guess = did_you_mean(targets[0], names) if targets else None
            hint = f" (did you mean {guess!r}?)" if guess else ""
            raise EstimateError(
                f"lora.target_modules {targets!r} match no layer of this {arch.family} model{hint}; "
                f"its linear layers are {', '.join(names)} (or use \"{ALL_LINEAR}\")")
    # each adapter: A is r x in, B is out x r; DoRA adds one magnitude per output feature
    params = sum(n * (r * (lin.in_features + lin.out_features) + (lin.out_features if dora else 0))
                 for lin, n in per_block)
    if embedding:  # lora_embedding_A is r x vocab, lora_embedding_B is hidden x r
        params += r * (v + h) + (h if dora else 0)
    if head:
        params += r * (h + v) + (v if dora else 0)
    return AdapterPlan(per_block, embedding, head, params, r, unmatched)


def trainable_biases(lay: Layout, plan: AdapterPlan, bias: str) -> int:
    """Base-model bias parameters peft unfreezes for lora.bias = "all" / "lora_only"."""
    if bias == "all":  # every parameter named *.bias, LayerNorm biases included
        return lay.num_layers * lay.block_biases + lay.final_norm_biases
    if bias == "lora_only":  # biases of the adapted layers only
        return sum(n * lin.out_features for lin, n in plan.per_block if lin.bias)
    return 0
