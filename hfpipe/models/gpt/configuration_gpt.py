"""GPT configuration: the architecture of "Build a Large Language Model (From Scratch)", and modern variants.

The defaults are the book's GPT-2 layout. Switches (``position``, ``norm``, ``mlp``, ``n_kv_heads``,
``qk_norm``, ``bias``) select a Llama-like or nanochat-like layout; ``GPT_ARCHITECTURES`` names three sets of
them, combined with a size from ``GPT_PRESETS`` by ``GPTConfig.from_preset(size, architecture=...)``.

Self-contained (imports only transformers) so that it can ship next to saved weights and be loaded
with ``trust_remote_code=True`` where hfpipe is not installed.
"""

import math

from transformers import PreTrainedConfig

# From transformers ~5.3 configs are dataclasses (fields with defaults, checked in __post_init__); before, a
# config's __init__ takes keyword arguments. GPTConfig is written as a dataclass and, on those earlier
# releases, gets an __init__ that passes its defaults on and runs the same checks.
_DATACLASS_CONFIGS = hasattr(PreTrainedConfig, "__dataclass_fields__")

# The book's GPT-2 sizes (124M / 355M / 774M / 1558M) and a tiny one for tests.
GPT_PRESETS: dict[str, dict] = {
    "gpt2-small": {"emb_dim": 768, "n_layers": 12, "n_heads": 12},
    "gpt2-medium": {"emb_dim": 1024, "n_layers": 24, "n_heads": 16},
    "gpt2-large": {"emb_dim": 1280, "n_layers": 36, "n_heads": 20},
    "gpt2-xl": {"emb_dim": 1600, "n_layers": 48, "n_heads": 25},
    "tiny": {
        "vocab_size": 512,
        "context_length": 64,
        "emb_dim": 64,
        "n_layers": 2,
        "n_heads": 4,
        "drop_rate": 0.0,
    },
}

SWITCH_VALUES: dict[str, tuple[str, ...]] = {
    "position": ("learned", "rope"),
    "norm": ("layernorm", "rmsnorm"),
    "mlp": ("gelu", "swiglu", "relu2"),
}

# Architecture presets: switch values over the book's defaults. n_kv_heads is derived from n_heads (see
# `_default_kv_heads`) unless given. "nanochat" is nanochat-like: it leaves out nanochat's norm right after the
# token embedding and its logit soft-capping, and uses multi-query attention (one key/value head).
GPT_ARCHITECTURES: dict[str, dict] = {
    "book": {},
    "llama": {
        "position": "rope",
        "norm": "rmsnorm",
        "mlp": "swiglu",
        "n_kv_heads": "gqa",
        "bias": False,
        "qkv_bias": False,
    },
    "nanochat": {
        "position": "rope",
        "norm": "rmsnorm",
        "norm_weight": False,
        "mlp": "relu2",
        "qk_norm": True,
        "n_kv_heads": 1,
        "bias": False,
        "qkv_bias": False,
        "tie_word_embeddings": False,
    },
}


def _rope_types() -> list[str]:
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS  # imports torch: only when asked

    return list(ROPE_INIT_FUNCTIONS)


def _default_kv_heads(n_heads: int) -> int:
    """The llama preset's grouped-query width: a quarter of the heads (at least 2) if that divides n_heads."""
    kv_heads = max(2, n_heads // 4)
    return kv_heads if n_heads % kv_heads == 0 else n_heads


def swiglu_width(emb_dim: int, ff_mult: int) -> int:
    """SwiGLU's default hidden width: 2/3 of ``ff_mult * emb_dim`` (same parameters as the GELU MLP, as in
    Llama), rounded up to a multiple of 64."""
    return 64 * math.ceil(2 * ff_mult * emb_dim / 3 / 64)


class GPTConfig(PreTrainedConfig):
    r"""Configuration of a GPT model: pre-norm blocks, by default the book's GPT-2 layout.

    Field names follow the book; the standard transformers names resolve to them:
    ``hidden_size`` -> ``emb_dim``, ``num_hidden_layers`` -> ``n_layers``,
    ``num_attention_heads`` -> ``n_heads``, ``max_position_embeddings`` -> ``context_length``.

    Args:
        vocab_size: number of token ids.
        context_length: longest sequence the position embeddings cover.
        emb_dim: width of the residual stream.
        n_heads: attention heads per block (must divide ``emb_dim``).
        n_layers: transformer blocks.
        drop_rate: dropout on embeddings, attention weights and residual branches, in [0, 1).
        qkv_bias: bias on the query/key/value projection (GPT-2 has one; the book's default has not).
        ff_mult: feed-forward width as a multiple of ``emb_dim`` (4 in GPT-2).
        activation_function: ``"gelu_pytorch_tanh"`` (the book's tanh-approximated GELU) or ``"gelu"``.
        layer_norm_epsilon: LayerNorm epsilon.
        initializer_range: std of the normal initialisation (GPT-2: 0.02).
        tie_word_embeddings: share the token embedding with the output head.
        position: ``"learned"`` (the book's position embedding) or ``"rope"`` (rotary, on queries and keys).
        rope_theta: RoPE base period.
        rope_scaling_parameters: optional RoPE scaling, in transformers' ``rope_parameters`` form without
            ``rope_theta`` (e.g. ``{"rope_type": "linear", "factor": 2.0}``), computed by
            ``transformers.modeling_rope_utils``. (Not named ``rope_scaling``/``rope_parameters``: transformers'
            base config gives those names a meaning of their own, differently across 5.x releases.)
        norm: ``"layernorm"`` or ``"rmsnorm"``.
        norm_weight: a learnable scale on every norm (False: RMSNorm without parameters, as nanochat).
        mlp: ``"gelu"`` (``activation_function``), ``"swiglu"`` (SiLU-gated) or ``"relu2"`` (squared ReLU).
        intermediate_size: hidden width of the MLP. Unset: ``ff_mult * emb_dim`` for gelu and relu2, and for
            swiglu 2/3 of that rounded up to a multiple of 64 (the same parameter count, as Llama does).
        n_kv_heads: key/value heads (grouped-query attention; 1 = multi-query). Unset: ``n_heads``.
        qk_norm: RMSNorm (with weight) over each head of the queries and keys, before RoPE, as Qwen3.
        bias: bias on the attention output projection, the MLP linears and LayerNorm (the book has them;
            ``qkv_bias`` is the query/key/value projection's).

    ``intermediate_size`` and ``n_kv_heads`` are resolved when the config is built, so a saved config holds
    the numbers (``num_key_value_heads`` reads ``n_kv_heads``).
    """

    model_type = "hfpipe_gpt"
    keys_to_ignore_at_inference = ["cache", "past_key_values"]  # the KV cache: `cache` from transformers 5.24
    attribute_map = {
        "hidden_size": "emb_dim",
        "num_hidden_layers": "n_layers",
        "num_attention_heads": "n_heads",
        "max_position_embeddings": "context_length",
        "num_key_value_heads": "n_kv_heads",
    }

    vocab_size: int = 50257
    context_length: int = 1024
    emb_dim: int = 768
    n_heads: int = 12
    n_layers: int = 12
    drop_rate: float = 0.1
    qkv_bias: bool = False
    ff_mult: int = 4
    activation_function: str = "gelu_pytorch_tanh"
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    use_cache: bool = True
    bos_token_id: int | None = 50256
    eos_token_id: int | list[int] | None = 50256
    pad_token_id: int | None = None
    tie_word_embeddings: bool = False
    position: str = "learned"
    rope_theta: float = 10000.0
    rope_scaling_parameters: dict | None = None
    norm: str = "layernorm"
    norm_weight: bool = True
    mlp: str = "gelu"
    intermediate_size: int | None = None
    n_kv_heads: int | None = None
    qk_norm: bool = False
    bias: bool = True

    def __post_init__(self, **kwargs):
        self._check()
        super().__post_init__(**kwargs)

    if not _DATACLASS_CONFIGS:

        def __init__(self, **kwargs):
            for alias, name in GPTConfig.attribute_map.items():  # hidden_size=... sets emb_dim
                if alias in kwargs:
                    kwargs[name] = kwargs.pop(alias)
            for name in GPTConfig.__annotations__:
                kwargs.setdefault(name, getattr(GPTConfig, name))
            super().__init__(**kwargs)
            self._check()

    def _check(self) -> None:
        for name in ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "ff_mult"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.emb_dim % self.n_heads:
            raise ValueError(
                f"GPTConfig.emb_dim ({self.emb_dim}) must be divisible by n_heads ({self.n_heads}); "
                f"pick n_heads among the divisors of emb_dim"
            )
        if not 0.0 <= float(self.drop_rate) < 1.0:
            raise ValueError(f"GPTConfig.drop_rate must be in [0, 1), got {self.drop_rate!r}")
        if self.activation_function not in ("gelu_pytorch_tanh", "gelu_new", "gelu"):
            raise ValueError(
                f"GPTConfig.activation_function must be 'gelu_pytorch_tanh', 'gelu_new' or 'gelu', "
                f"got {self.activation_function!r}"
            )
        for name, allowed in SWITCH_VALUES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"GPTConfig.{name} must be one of {', '.join(map(repr, allowed))}, got {getattr(self, name)!r}"
                )
        self._resolve_widths()
        rope_type = (self.rope_scaling_parameters or {}).get("rope_type", "default")
        if rope_type != "default" and rope_type not in _rope_types():
            raise ValueError(
                f"GPTConfig.rope_scaling_parameters has rope_type {rope_type!r}; choose one of "
                f"{['default', *_rope_types()]}"
            )
        if self.position == "rope" and self.head_dim % 2:
            raise ValueError(
                f"GPTConfig.position 'rope' needs an even head size, got emb_dim / n_heads = {self.head_dim}; "
                f"change emb_dim or n_heads"
            )

    def _resolve_widths(self) -> None:
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if not isinstance(self.n_kv_heads, int) or isinstance(self.n_kv_heads, bool) or self.n_kv_heads <= 0:
            raise ValueError(f"GPTConfig.n_kv_heads must be a positive integer, got {self.n_kv_heads!r}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"GPTConfig.n_kv_heads ({self.n_kv_heads}) must divide n_heads ({self.n_heads}); "
                f"pick n_kv_heads among the divisors of n_heads"
            )
        if self.intermediate_size is None:
            width = self.ff_mult * self.emb_dim
            self.intermediate_size = (
                swiglu_width(self.emb_dim, self.ff_mult) if self.mlp == "swiglu" else width
            )
        value = self.intermediate_size
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"GPTConfig.intermediate_size must be a positive integer, got {value!r}")

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs) -> "GPTConfig":
        """Build from a saved dict; one saved by another model type (BERT, GPT-2, ...) is an error."""
        model_type = config_dict.get("model_type")
        if model_type not in (None, cls.model_type):
            hint = " (convert GPT-2 checkpoints with hfpipe.convert.load_gpt)" if model_type == "gpt2" else ""
            raise ValueError(
                f"config has model_type {model_type!r}, not {cls.model_type!r}: it is not a GPT checkpoint{hint}"
            )
        return super().from_dict(config_dict, **kwargs)

    @property
    def head_dim(self) -> int:
        return self.emb_dim // self.n_heads

    @classmethod
    def from_preset(cls, name: str, architecture: str = "book", **overrides) -> "GPTConfig":
        """Build a config from a size preset (``gpt2-small`` ... ``gpt2-xl``, ``tiny``), an architecture
        preset (``book``, ``llama``, ``nanochat``: ``GPT_ARCHITECTURES``) and overrides."""
        if name not in GPT_PRESETS:
            raise ValueError(f"unknown GPT preset {name!r}; choose one of {sorted(GPT_PRESETS)}")
        if architecture not in GPT_ARCHITECTURES:
            raise ValueError(
                f"unknown GPT architecture {architecture!r}; choose one of {sorted(GPT_ARCHITECTURES)}"
            )
        kwargs = {**GPT_PRESETS[name], **GPT_ARCHITECTURES[architecture], **overrides}
        if kwargs.get("n_kv_heads") == "gqa":
            kwargs["n_kv_heads"] = _default_kv_heads(kwargs.get("n_heads", cls.n_heads))
        vocab_size = kwargs.get("vocab_size", 50257)
        for key in ("bos_token_id", "eos_token_id"):  # GPT-2's 50256 only exists in a GPT-2-sized vocabulary
            kwargs.setdefault(key, 50256 if vocab_size > 50256 else None)
        return cls(**kwargs)


def rope_parameters(config: GPTConfig) -> dict | None:
    """RoPE settings in the form of transformers' ``rope_parameters`` (None with learned positions)."""
    if config.position != "rope":
        return None
    return {"rope_type": "default", **(config.rope_scaling_parameters or {}), "rope_theta": config.rope_theta}


def architecture_name(config: GPTConfig) -> str:
    """The architecture preset ``config`` follows (``book``, ``llama``, ``nanochat``), else ``custom``.

    Sizes, key/value heads (except that the book has all of them), tying and qkv_bias do not count."""
    for name, switches in GPT_ARCHITECTURES.items():
        expected = {k: switches.get(k, getattr(GPTConfig, k)) for k in _NAMED_SWITCHES}
        if all(getattr(config, k) == v for k, v in expected.items()):
            if name != "book" or config.n_kv_heads == config.n_heads:
                return name
    return "custom"


def describe_architecture(config: GPTConfig) -> str:
    """One phrase naming the layout, e.g. ``llama (rope, rmsnorm, swiglu, 4 of 16 kv heads, no bias)``."""
    parts = [config.position, config.norm + ("" if config.norm_weight else " without weight"), config.mlp]
    if config.n_kv_heads != config.n_heads:
        parts.append(f"{config.n_kv_heads} of {config.n_heads} kv heads")
    if config.qk_norm:
        parts.append("qk-norm")
    if not config.bias:
        parts.append("no bias")
    return f"{architecture_name(config)} ({', '.join(parts)})"


def non_book_switches(config: GPTConfig) -> list[str]:
    """The switches (``name=value``) by which ``config`` differs from the book's GPT-2 layout."""
    book = {"position": "learned", "norm": "layernorm", "norm_weight": True, "mlp": "gelu", "qk_norm": False,
            "bias": True, "n_kv_heads": config.n_heads}  # fmt: skip
    return [f"{k}={getattr(config, k)!r}" for k, v in book.items() if getattr(config, k) != v]


# The switches that name an architecture preset (architecture_name).
_NAMED_SWITCHES = ("position", "norm", "norm_weight", "mlp", "qk_norm", "bias")

__all__ = [
    "GPTConfig",
    "GPT_ARCHITECTURES",
    "GPT_PRESETS",
    "architecture_name",
    "describe_architecture",
    "non_book_switches",
    "rope_parameters",
]
