"""The GPT of "Build a Large Language Model (From Scratch)" as a native transformers model, with modern switches.

token (+ learned position) embeddings -> dropout -> N x [norm -> causal attention -> shortcut,
norm -> feed-forward -> shortcut] -> final norm -> linear head.

Each switch of ``GPTConfig`` picks a module once, in ``__init__``: the norm class (``GPTLayerNorm`` or
``GPTRMSNorm``), the feed-forward class (``GPTFeedForward`` for gelu/relu2, ``GPTGatedFeedForward`` for
swiglu), and the positions (``model.pos_emb`` added to the embeddings, or ``model.rotary_emb`` whose
(cos, sin) every attention applies to its queries and keys, as in transformers' Llama).

Parameter names (``model.`` prefix in the heads; ``blocks.{i}`` for each layer), for weight mapping:

    model.tok_emb.weight                  (vocab_size, emb_dim)
    model.pos_emb.weight                  (context_length, emb_dim)          position="learned" only
    model.rotary_emb                      buffers only (inv_freq), not saved  position="rope" only
    model.blocks.{i}.norm1.weight/.bias   (emb_dim,); the bias only with norm="layernorm" and bias=True,
                                          no parameter at all with norm_weight=False
    model.blocks.{i}.att.qkv.weight/.bias ((n_heads + 2 * n_kv_heads) * head_dim, emb_dim), rows laid out
                                          [q | k | v], each head-major (head 0's head_dim rows first);
                                          the bias with qkv_bias=True
    model.blocks.{i}.att.q_norm.weight    (head_dim,)  qk_norm=True only (RMSNorm, as Qwen3's q_norm)
    model.blocks.{i}.att.k_norm.weight    (head_dim,)  qk_norm=True only
    model.blocks.{i}.att.out_proj.weight/.bias  (emb_dim, n_heads * head_dim); the bias with bias=True
    model.blocks.{i}.norm2.weight/.bias   as norm1
    model.blocks.{i}.ff.fc1.weight/.bias  (intermediate_size, emb_dim): mlp="gelu" or "relu2"
    model.blocks.{i}.ff.gate_up.weight/.bias  (2 * intermediate_size, emb_dim), rows laid out [gate | up]:
                                          mlp="swiglu" only (out = fc2(silu(gate) * up))
    model.blocks.{i}.ff.fc2.weight/.bias  (emb_dim, intermediate_size), the down projection
    model.final_norm.weight/.bias         as norm1
    lm_head.weight                        (vocab_size, emb_dim), tied to tok_emb with tie_word_embeddings
    score.weight/.bias                    (num_labels, emb_dim), GPTForSequenceClassification

The feed-forward biases exist with bias=True. RoPE rotates the two halves of each head (transformers'
``rotate_half``, the layout of transformers' Llama), with ``rope_theta`` and optional
``rope_scaling_parameters`` through ``transformers.modeling_rope_utils``.

Self-contained: imports only torch and transformers, so ``save_pretrained`` can ship this file next to the
weights (``auto_map``) and ``AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True)`` works
without hfpipe installed.
"""

import inspect
import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F
from transformers import GenerationMixin, LlamaConfig, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutputWithPast,
)
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS, dynamic_rope_update
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import can_return_tuple, logging

from .configuration_gpt import GPTConfig, rope_parameters

try:
    from transformers.utils.output_capturing import capture_outputs
except ImportError:  # transformers 5.0 and 5.1 capture outputs in check_model_inputs
    from transformers.utils.generic import check_model_inputs as capture_outputs

logger = logging.get_logger(__name__)

# Written into every saved config, so that any Auto class finds this file's classes with trust_remote_code=True.
AUTO_MAP = {
    "AutoConfig": "configuration_gpt.GPTConfig",
    "AutoModel": "modeling_gpt.GPTModel",
    "AutoModelForCausalLM": "modeling_gpt.GPTForCausalLM",
    "AutoModelForSequenceClassification": "modeling_gpt.GPTForSequenceClassification",
}


# The arguments of create_causal_mask changed within transformers 5: `input_embeds` became `inputs_embeds` (5.2),
# the then required `cache_position` was dropped later, and `past_key_values` became `cache` (5.24). The mask is
# built with the ones this version takes.
_MASK_ARGS = inspect.signature(create_causal_mask).parameters
# The KV cache's name in this transformers: `cache` from 5.24 (forward arguments, outputs, generate's inputs),
# `past_key_values` before. The model takes either name and returns the cache under this one.
CACHE_NAME = "cache" if "cache" in _MASK_ARGS else "past_key_values"


def make_causal_mask(config, inputs_embeds, attention_mask, cache, position_ids, past_len):
    """``create_causal_mask`` for a chunk of ``inputs_embeds`` after ``past_len`` cached tokens."""
    embeds_name = "inputs_embeds" if "inputs_embeds" in _MASK_ARGS else "input_embeds"
    kwargs = {embeds_name: inputs_embeds, CACHE_NAME: cache}
    if "cache_position" in _MASK_ARGS:
        kwargs["cache_position"] = torch.arange(
            past_len, past_len + inputs_embeds.shape[1], device=inputs_embeds.device
        )
    return create_causal_mask(
        config=config, attention_mask=attention_mask, position_ids=position_ids, **kwargs
    )


def resolve_cache(cache: Cache | None, past_key_values: Cache | None) -> Cache | None:
    """The cache passed under either name (``cache`` from transformers 5.24, ``past_key_values`` before)."""
    if cache is not None and past_key_values is not None:
        raise ValueError("pass the KV cache as either `cache` or `past_key_values`, not both")
    return cache if cache is not None else past_key_values


def repeat_kv(hidden_states: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(batch, kv_heads, seq, head_dim) -> (batch, kv_heads * n_rep, seq, head_dim): each kv head n_rep times."""
    if n_rep == 1:
        return hidden_states
    batch, kv_heads, seq_len, head_dim = hidden_states.shape
    hidden_states = hidden_states[:, :, None].expand(batch, kv_heads, n_rep, seq_len, head_dim)
    return hidden_states.reshape(batch, kv_heads * n_rep, seq_len, head_dim)


def eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Plain softmax(QK^T / sqrt(d) + mask) V, as written in the book; returns the weights too."""
    key = repeat_kv(key, module.num_key_value_groups)
    value = repeat_kv(value, module.num_key_value_groups)
    attn_weights = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            attn_weights = attn_weights.masked_fill(~attention_mask, torch.finfo(attn_weights.dtype).min)
        else:
            attn_weights = attn_weights + attention_mask
    attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(value.dtype)
    attn_weights = F.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2)
    return attn_output, attn_weights


class GPTLayerNorm(nn.LayerNorm):
    """LayerNorm; without ``norm_weight`` it has no parameter, without ``bias`` no bias."""

    def __init__(self, dim: int, config: GPTConfig):
        super().__init__(
            dim, eps=config.layer_norm_epsilon, elementwise_affine=config.norm_weight, bias=config.bias
        )


class GPTRMSNorm(nn.Module):
    """RMSNorm computed in float32 (as Llama's), with a learnable scale unless ``weight=False``."""

    def __init__(self, dim: int, eps: float, weight: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim)) if weight else None
        self.dim, self.eps = dim, eps

    def forward(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = (hidden_states * torch.rsqrt(variance + self.eps)).to(input_dtype)
        return hidden_states if self.weight is None else self.weight * hidden_states

    def extra_repr(self):
        return f"{self.dim}, eps={self.eps}, weight={self.weight is not None}"


def make_norm(config: GPTConfig, dim: int) -> nn.Module:
    """The block/final norm the config chooses."""
    if config.norm == "rmsnorm":
        return GPTRMSNorm(dim, config.layer_norm_epsilon, weight=config.norm_weight)
    return GPTLayerNorm(dim, config)


def rope_config(config: GPTConfig) -> LlamaConfig:
    """The config transformers' rope utilities read (a Llama one: they standardise and read its rope fields)."""
    return LlamaConfig(
        hidden_size=config.emb_dim,
        num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_kv_heads,
        head_dim=config.head_dim,
        max_position_embeddings=config.context_length,
        rope_parameters=rope_parameters(config),
    )


def make_head_norm(config: GPTConfig) -> nn.Module:
    """The per-head norm of queries or keys: RMSNorm with weight under ``qk_norm`` (as Qwen3), else nothing."""
    return GPTRMSNorm(config.head_dim, config.layer_norm_epsilon) if config.qk_norm else nn.Identity()


class GPTRotaryEmbedding(nn.Module):
    """RoPE (cos, sin) per position, computed once per forward for all layers, as transformers' Llama does."""

    inv_freq: torch.Tensor

    def __init__(self, config: GPTConfig, device=None):
        super().__init__()
        self.config = rope_config(config)  # read again by dynamic_rope_update and transformers' _init_weights
        self.max_seq_len_cached = self.original_max_seq_len = config.context_length
        self.rope_type = self.config.rope_parameters["rope_type"]
        init_fn = ROPE_INIT_FUNCTIONS.get(self.rope_type, self.compute_default_rope_parameters)
        inv_freq, self.attention_scaling = init_fn(self.config, device)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.register_buffer("original_inv_freq", inv_freq.clone(), persistent=False)

    @staticmethod
    def compute_default_rope_parameters(config: LlamaConfig, device=None, seq_len=None, **kwargs):
        """The original RoPE frequencies: theta^(-2i/d) over the head size d."""
        dim = config.head_dim
        exponents = torch.arange(0, dim, 2, dtype=torch.int64).to(device=device, dtype=torch.float) / dim
        return 1.0 / (config.rope_parameters["rope_theta"] ** exponents), 1.0

    @torch.no_grad()
    @dynamic_rope_update  # recomputes the frequencies for the dynamic/longrope scalings
    def forward(self, x, position_ids):
        inv_freq = self.inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1).to(x.device)
        device_type = x.device.type if x.device.type != "mps" else "cpu"
        with torch.autocast(device_type=device_type, enabled=False):  # float32 angles
            freqs = (inv_freq @ position_ids[:, None, :].float()).transpose(1, 2)
            emb = torch.cat((freqs, freqs), dim=-1)
            cos, sin = emb.cos() * self.attention_scaling, emb.sin() * self.attention_scaling
        return cos.to(dtype=x.dtype), sin.to(dtype=x.dtype)


def rotate_half(x):
    """(x1, x2) -> (-x2, x1) over the two halves of the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(query, key, cos, sin):
    """Rotate queries and keys (batch, heads, seq, head_dim) by their positions' angles."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return query * cos + rotate_half(query) * sin, key * cos + rotate_half(key) * sin


class GPTAttention(nn.Module):
    """Causal self-attention with one fused query/key/value projection; grouped-query when n_kv_heads < n_heads."""

    def __init__(self, config: GPTConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads, self.num_kv_heads = config.n_heads, config.n_kv_heads
        self.num_key_value_groups = config.n_heads // config.n_kv_heads  # read by transformers' sdpa too
        self.head_dim = config.head_dim
        self.scaling = self.head_dim**-0.5
        self.is_causal = True
        self.qkv = nn.Linear(
            config.emb_dim, (self.num_heads + 2 * self.num_kv_heads) * self.head_dim, bias=config.qkv_bias
        )
        self.out_proj = nn.Linear(self.num_heads * self.head_dim, config.emb_dim, bias=config.bias)
        self.out_proj.is_residual_projection = True  # scaled GPT-2 init, see GPTPreTrainedModel._init_weights
        self.q_norm, self.k_norm = make_head_norm(config), make_head_norm(config)
        self.attn_dropout = nn.Dropout(config.drop_rate)  # a module: trl's disable_dropout (p = 0) reaches it
        self.resid_dropout = nn.Dropout(config.drop_rate)

    def forward(self, hidden_states, position_embeddings=None, attention_mask=None, cache=None, **kwargs):
        batch, seq_len, _ = hidden_states.shape
        sizes = [self.num_heads * self.head_dim, *(2 * [self.num_kv_heads * self.head_dim])]
        query, key, value = self.qkv(hidden_states).split(sizes, dim=-1)
        query = self.q_norm(query.view(batch, seq_len, -1, self.head_dim)).transpose(1, 2)
        key = self.k_norm(key.view(batch, seq_len, -1, self.head_dim)).transpose(1, 2)
        value = value.view(batch, seq_len, -1, self.head_dim).transpose(1, 2)  # each (batch, heads, seq, dim)
        if position_embeddings is not None:  # rope
            query, key = apply_rotary_pos_emb(query, key, *position_embeddings)
        if cache is not None:
            key, value = cache.update(key, value, self.layer_idx)

        # "eager" is not registered there: it is this file's function (get_interface is newer than 5.0)
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.attn_dropout.p if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )
        attn_output = attn_output.reshape(batch, seq_len, -1).contiguous()
        return self.resid_dropout(self.out_proj(attn_output)), attn_weights


class ReLUSquared(nn.Module):
    """relu(x)^2 (Primer; nanochat and modded-nanogpt)."""

    def forward(self, x):
        return F.relu(x).square()


def make_activation(config: GPTConfig) -> nn.Module:
    """The feed-forward nonlinearity: the book's GELU (tanh-approximated or exact) or relu²."""
    if config.mlp == "relu2":
        return ReLUSquared()
    return nn.GELU(approximate="none" if config.activation_function == "gelu" else "tanh")


class GPTFeedForward(nn.Module):
    """fc1 -> activation -> fc2, ``intermediate_size`` wide in the middle (gelu and relu2)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.emb_dim, config.intermediate_size, bias=config.bias)
        self.fc2 = nn.Linear(config.intermediate_size, config.emb_dim, bias=config.bias)
        self.fc2.is_residual_projection = True
        self.act = make_activation(config)
        self.dropout = nn.Dropout(config.drop_rate)

    def forward(self, hidden_states):
        return self.dropout(self.fc2(self.act(self.fc1(hidden_states))))


class GPTGatedFeedForward(nn.Module):
    """SwiGLU: fc2(silu(gate) * up), with gate and up in one fused projection (rows [gate | up])."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.gate_up = nn.Linear(config.emb_dim, 2 * config.intermediate_size, bias=config.bias)
        self.fc2 = nn.Linear(config.intermediate_size, config.emb_dim, bias=config.bias)
        self.fc2.is_residual_projection = True
        self.dropout = nn.Dropout(config.drop_rate)

    def forward(self, hidden_states):
        gate, up = self.gate_up(hidden_states).chunk(2, dim=-1)
        return self.dropout(self.fc2(F.silu(gate) * up))


FEED_FORWARDS = {"gelu": GPTFeedForward, "relu2": GPTFeedForward, "swiglu": GPTGatedFeedForward}


class GPTBlock(GradientCheckpointingLayer):
    """Pre-norm transformer block: x + att(norm1(x)), then x + ff(norm2(x))."""

    def __init__(self, config: GPTConfig, layer_idx: int):
        super().__init__()
        self.norm1 = make_norm(config, config.emb_dim)
        self.att = GPTAttention(config, layer_idx)
        self.norm2 = make_norm(config, config.emb_dim)
        self.ff = FEED_FORWARDS[config.mlp](config)

    def forward(self, hidden_states, position_embeddings=None, attention_mask=None, cache=None, **kwargs):
        attn_output, _ = self.att(
            self.norm1(hidden_states),
            position_embeddings=position_embeddings,
            attention_mask=attention_mask,
            cache=cache,
            **kwargs,
        )
        hidden_states = hidden_states + attn_output
        return hidden_states + self.ff(self.norm2(hidden_states))


class GPTPreTrainedModel(PreTrainedModel):
    """Weight initialisation, the capabilities transformers checks for, and the outputs it can record."""

    config_class = GPTConfig
    config: GPTConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["GPTBlock"]
    _skip_keys_device_placement = ["cache", "past_key_values"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = True
    # `output_hidden_states` / `output_attentions` are recorded by hooks on these modules (`capture_outputs`):
    # each block's output, and the attention weights (the 2nd output of GPTAttention).
    _can_record_outputs = {"hidden_states": GPTBlock, "attentions": GPTAttention}

    def __init__(self, config: GPTConfig, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        self.config.auto_map = {**AUTO_MAP, **(getattr(self.config, "auto_map", None) or {})}

    @torch.no_grad()
    def _init_weights(self, module):
        """GPT-2 initialisation: N(0, 0.02), zero biases, residual projections scaled by 1/sqrt(2 * n_layers).

        The residual projections are recognised by a flag on the ``nn.Linear`` itself: for custom code,
        transformers skips ``_init_weights`` on modules without direct parameters (``GPTAttention``).
        """
        super()._init_weights(module)
        if isinstance(module, nn.Linear) and getattr(module, "is_residual_projection", False):
            std = self.config.initializer_range / math.sqrt(2 * self.config.n_layers)
            init.normal_(module.weight, mean=0.0, std=std)
        # transformers' own _init_weights sets RMSNorm weights to one (by class name) and recomputes the
        # rotary buffers (not saved) of GPTRotaryEmbedding


class GPTModel(GPTPreTrainedModel):
    """The GPT backbone: embeddings, positions (learned or rotary), transformer blocks and the final norm."""

    def __init__(self, config: GPTConfig):
        super().__init__(config)
        self.tok_emb = nn.Embedding(config.vocab_size, config.emb_dim)
        learned = config.position == "learned"
        self.pos_emb = nn.Embedding(config.context_length, config.emb_dim) if learned else None
        self.rotary_emb = None if learned else GPTRotaryEmbedding(config)
        self.drop_emb = nn.Dropout(config.drop_rate)
        self.blocks = nn.ModuleList([GPTBlock(config, i) for i in range(config.n_layers)])
        self.final_norm = make_norm(config, config.emb_dim)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.tok_emb

    def set_input_embeddings(self, new_embeddings):
        self.tok_emb = new_embeddings

    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        """Run the backbone; ``output_hidden_states``/``output_attentions``/``return_dict`` are handled by
        ``capture_outputs``. The KV cache comes as ``cache`` or ``past_key_values``, whichever the caller uses."""
        cache = resolve_cache(cache, past_key_values)
        use_cache = use_cache if use_cache is not None else self.config.use_cache
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("GPTModel.forward needs exactly one of input_ids or inputs_embeds")
        if self.gradient_checkpointing and self.training and use_cache:
            use_cache = False  # a cache written during the checkpointed recompute would be updated twice

        if inputs_embeds is None:
            inputs_embeds = self.tok_emb(input_ids)
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        past_len = cache.get_seq_length() if cache is not None else 0
        seq_len = inputs_embeds.shape[1]
        # Packed rows (padding-free training) restart position_ids per example: only positions must fit.
        longest = int(position_ids.max()) + 1 if position_ids is not None else past_len + seq_len
        if longest > self.config.context_length:
            raise ValueError(
                f"sequence of {longest} positions is longer than the model's context_length "
                f"({self.config.context_length}); truncate the input (e.g. tokenizer(..., truncation=True, "
                f"max_length={self.config.context_length})) or generate fewer tokens"
            )
        # Only caller-given position ids go to the mask (restarting ids mark packed sequences there).
        mask_position_ids = position_ids
        if position_ids is None and attention_mask is not None and attention_mask.ndim == 2:
            # count real tokens only, so that a left-padded sequence sees the positions of the unpadded one
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -seq_len:]
        elif position_ids is None:
            position_ids = torch.arange(past_len, past_len + seq_len, device=inputs_embeds.device)[None]

        hidden_states = inputs_embeds if self.pos_emb is None else inputs_embeds + self.pos_emb(position_ids)
        hidden_states = self.drop_emb(hidden_states)
        position_embeddings = (
            None if self.rotary_emb is None else self.rotary_emb(hidden_states, position_ids)
        )
        causal_mask = make_causal_mask(
            self.config, inputs_embeds, attention_mask, cache, mask_position_ids, past_len
        )

        for block in self.blocks:  # hidden_states positional: the hooks of `capture_outputs` read args[0]
            hidden_states = block(
                hidden_states,
                position_embeddings=position_embeddings,
                attention_mask=causal_mask,
                cache=cache,
                **kwargs,
            )
        return BaseModelOutputWithPast(
            last_hidden_state=self.final_norm(hidden_states), **{CACHE_NAME: cache if use_cache else None}
        )


def _backbone_extras(outputs: BaseModelOutputWithPast) -> dict:
    """What a head's output passes on from the backbone's: the cache and the recorded states."""
    return {
        CACHE_NAME: getattr(outputs, CACHE_NAME),
        "hidden_states": outputs.hidden_states,
        "attentions": outputs.attentions,
    }


class GPTForCausalLM(GPTPreTrainedModel, GenerationMixin):
    """GPT with the linear output head over the vocabulary; works with ``generate()`` and ``pipeline()``."""

    _tied_weights_keys = {"lm_head.weight": "model.tok_emb.weight"}

    def __init__(self, config: GPTConfig):
        super().__init__(config)
        self.model = GPTModel(config)
        self.lm_head = nn.Linear(config.emb_dim, config.vocab_size, bias=False)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """``labels`` are the input ids themselves (shifted inside, -100 ignored), as everywhere in transformers.

        The KV cache comes as ``cache`` (transformers 5.24 and later) or ``past_key_values`` (before). The
        arguments ``generate()`` looks for in this signature are named; the rest (``output_attentions``,
        ``output_hidden_states``, attention-kernel kwargs) go to ``GPTModel`` through ``kwargs``.
        """
        outputs = self.model(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=resolve_cache(cache, past_key_values),
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(outputs.last_hidden_state[:, keep, :])
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(loss=loss, logits=logits, **_backbone_extras(outputs))

    def generate(self, inputs=None, generation_config=None, **kwargs):
        """``GenerationMixin.generate`` that refuses prompts longer than the context and caps new tokens at it."""
        prompt = inputs if inputs is not None else kwargs.get("input_ids")
        if prompt is not None and prompt.ndim >= 2:
            limit, prompt_len = self.config.context_length, prompt.shape[-1]
            if prompt_len > limit:
                raise ValueError(
                    f"prompt of {prompt_len} tokens is longer than context_length ({limit}); "
                    f"truncate it, e.g. keep its last {limit} tokens"
                )
            gen_config = generation_config if generation_config is not None else self.generation_config
            new = kwargs.get("max_new_tokens", gen_config.max_new_tokens)
            max_length = kwargs.get("max_length")
            if new is None:  # with no length set at all, transformers itself caps at max_position_embeddings
                max_length = max_length if max_length is not None else gen_config.max_length
                new = max_length - prompt_len if max_length is not None else None
            if new is not None and prompt_len + new > limit:
                logger.warning(
                    f"generation truncated: {prompt_len} prompt + {new} new tokens exceed context_length "
                    f"{limit}; generating {limit - prompt_len} new tokens"
                )
                kwargs["max_new_tokens"] = limit - prompt_len
                kwargs.pop("max_length", None)
        return super().generate(inputs, generation_config=generation_config, **kwargs)


class GPTForSequenceClassification(GPTPreTrainedModel):
    """GPT with a classification head on the last non-padding token, as in the book's spam classifier."""

    def __init__(self, config: GPTConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = GPTModel(config)
        self.score = nn.Linear(config.emb_dim, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutputWithPast:
        """Classify each sequence from the hidden state of its last real token (any padding side).

        Other ``GPTModel`` arguments (``position_ids``, ``use_cache``, ``output_attentions``, ...) pass through
        ``kwargs``.
        """
        outputs = self.model(input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, **kwargs)
        hidden_states = outputs.last_hidden_state
        batch, seq_len = hidden_states.shape[:2]
        positions = torch.arange(seq_len, device=hidden_states.device)
        if attention_mask is not None and attention_mask.ndim == 2:
            real = attention_mask.to(hidden_states.device).bool()
        elif input_ids is not None and self.config.pad_token_id is not None:
            real = input_ids.to(hidden_states.device) != self.config.pad_token_id
        else:
            real = torch.ones(batch, seq_len, dtype=torch.bool, device=hidden_states.device)
        last = torch.where(real, positions, -1).amax(dim=-1).clamp(min=0)  # rightmost real token
        pooled = hidden_states[torch.arange(batch, device=hidden_states.device), last]
        logits = self.score(pooled)

        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, pooled_logits=logits, config=self.config)
        return SequenceClassifierOutputWithPast(loss=loss, logits=logits, **_backbone_extras(outputs))


__all__ = [
    "GPTPreTrainedModel",
    "GPTModel",
    "GPTForCausalLM",
    "GPTForSequenceClassification",
]
