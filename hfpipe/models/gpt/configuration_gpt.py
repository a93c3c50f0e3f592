"""GPT configuration: the architecture of "Build a Large Language Model (From Scratch)".

Self-contained (imports only transformers) so that it can ship next to saved weights and be loaded
with ``trust_remote_code=True`` where hfpipe is not installed.
"""

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


class GPTConfig(PreTrainedConfig):
    r"""Configuration of a GPT model (token + learned position embeddings, pre-LayerNorm blocks).

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
    """

    model_type = "hfpipe_gpt"
    keys_to_ignore_at_inference = ["cache", "past_key_values"]  # the KV cache: `cache` from transformers 5.24
    attribute_map = {
        "hidden_size": "emb_dim",
        "num_hidden_layers": "n_layers",
        "num_attention_heads": "n_heads",
        "max_position_embeddings": "context_length",
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
    def from_preset(cls, name: str, **overrides) -> "GPTConfig":
        """Build a config from a named preset (``gpt2-small`` ... ``gpt2-xl``, ``tiny``) plus overrides."""
        if name not in GPT_PRESETS:
            raise ValueError(f"unknown GPT preset {name!r}; choose one of {sorted(GPT_PRESETS)}")
        kwargs = {**GPT_PRESETS[name], **overrides}
        vocab_size = kwargs.get("vocab_size", 50257)
        for key in ("bos_token_id", "eos_token_id"):  # GPT-2's 50256 only exists in a GPT-2-sized vocabulary
            kwargs.setdefault(key, 50256 if vocab_size > 50256 else None)
        return cls(**kwargs)


__all__ = ["GPTConfig", "GPT_PRESETS"]
