"""The GPT of "Build a Large Language Model (From Scratch)" as a native transformers model.

token + learned position embeddings -> dropout -> N x [LayerNorm -> causal multi-head attention -> shortcut,
LayerNorm -> GELU feed-forward (4x) -> shortcut] -> final LayerNorm -> linear head.

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
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutputWithPast,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import can_return_tuple, logging

from .configuration_gpt import GPTConfig

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


def eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Plain softmax(QK^T / sqrt(d) + mask) V, as written in the book; returns the weights too."""
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


class GPTAttention(nn.Module):
    """Causal multi-head self-attention with one fused query/key/value projection."""

    def __init__(self, config: GPTConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.n_heads
        self.head_dim = config.emb_dim // config.n_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = True
        self.qkv = nn.Linear(config.emb_dim, 3 * config.emb_dim, bias=config.qkv_bias)
        self.out_proj = nn.Linear(config.emb_dim, config.emb_dim)
        self.out_proj.is_residual_projection = True  # scaled GPT-2 init, see GPTPreTrainedModel._init_weights
        self.attn_dropout = nn.Dropout(config.drop_rate)  # a module: trl's disable_dropout (p = 0) reaches it
        self.resid_dropout = nn.Dropout(config.drop_rate)

    def forward(self, hidden_states, attention_mask=None, cache: Cache | None = None, **kwargs):
        batch, seq_len, _ = hidden_states.shape
        qkv = self.qkv(hidden_states).view(batch, seq_len, 3, self.num_heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (batch, heads, seq, head_dim)
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


class GPTFeedForward(nn.Module):
    """Two linear layers around a GELU, ``ff_mult`` times wider in the middle."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.emb_dim, config.ff_mult * config.emb_dim)
        self.fc2 = nn.Linear(config.ff_mult * config.emb_dim, config.emb_dim)
        self.fc2.is_residual_projection = True
        approximate = "none" if config.activation_function == "gelu" else "tanh"
        self.act = nn.GELU(approximate=approximate)
        self.dropout = nn.Dropout(config.drop_rate)

    def forward(self, hidden_states):
        return self.dropout(self.fc2(self.act(self.fc1(hidden_states))))


class GPTBlock(GradientCheckpointingLayer):
    """Pre-LayerNorm transformer block: x + att(norm1(x)), then x + ff(norm2(x))."""

    def __init__(self, config: GPTConfig, layer_idx: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.emb_dim, eps=config.layer_norm_epsilon)
        self.att = GPTAttention(config, layer_idx)
        self.norm2 = nn.LayerNorm(config.emb_dim, eps=config.layer_norm_epsilon)
        self.ff = GPTFeedForward(config)

    def forward(self, hidden_states, attention_mask=None, cache=None, **kwargs):
        attn_output, _ = self.att(
            self.norm1(hidden_states), attention_mask=attention_mask, cache=cache, **kwargs
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


class GPTModel(GPTPreTrainedModel):
    """The GPT backbone: embeddings, transformer blocks and the final LayerNorm."""

    def __init__(self, config: GPTConfig):
        super().__init__(config)
        self.tok_emb = nn.Embedding(config.vocab_size, config.emb_dim)
        self.pos_emb = nn.Embedding(config.context_length, config.emb_dim)
        self.drop_emb = nn.Dropout(config.drop_rate)
        self.blocks = nn.ModuleList([GPTBlock(config, i) for i in range(config.n_layers)])
        self.final_norm = nn.LayerNorm(config.emb_dim, eps=config.layer_norm_epsilon)
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

        hidden_states = self.drop_emb(inputs_embeds + self.pos_emb(position_ids))
        causal_mask = make_causal_mask(
            self.config, inputs_embeds, attention_mask, cache, mask_position_ids, past_len
        )

        for block in self.blocks:  # hidden_states positional: the hooks of `capture_outputs` read args[0]
            hidden_states = block(hidden_states, attention_mask=causal_mask, cache=cache, **kwargs)
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
