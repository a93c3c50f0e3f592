"""GPT-2 <-> hfpipe GPT conversion.

transformers' GPT-2 stores its linears as ``Conv1D`` (weight of shape ``(in, out)``); hfpipe uses
``nn.Linear`` (``(out, in)``), so the conversion is a rename plus a transpose. Both directions keep
every parameter, so logits match to float precision.
"""

from __future__ import annotations

import logging

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from .models.gpt import GPTConfig, GPTForCausalLM
from .models.gpt.configuration_gpt import non_book_switches

logger = logging.getLogger(__name__)

# (hfpipe name, GPT-2 name, transpose?) for each block parameter.
_BLOCK_MAP = [
    ("norm1.weight", "ln_1.weight", False),
    ("norm1.bias", "ln_1.bias", False),
    ("att.qkv.weight", "attn.c_attn.weight", True),
    ("att.qkv.bias", "attn.c_attn.bias", False),
    ("att.out_proj.weight", "attn.c_proj.weight", True),
    ("att.out_proj.bias", "attn.c_proj.bias", False),
    ("norm2.weight", "ln_2.weight", False),
    ("norm2.bias", "ln_2.bias", False),
    ("ff.fc1.weight", "mlp.c_fc.weight", True),
    ("ff.fc1.bias", "mlp.c_fc.bias", False),
    ("ff.fc2.weight", "mlp.c_proj.weight", True),
    ("ff.fc2.bias", "mlp.c_proj.bias", False),
]
_TOP_MAP = [
    ("model.tok_emb.weight", "transformer.wte.weight"),
    ("model.pos_emb.weight", "transformer.wpe.weight"),
    ("model.final_norm.weight", "transformer.ln_f.weight"),
    ("model.final_norm.bias", "transformer.ln_f.bias"),
    ("lm_head.weight", "lm_head.weight"),
]


def gpt2_config_to_gpt(config: GPT2Config) -> GPTConfig:
    """Translate a ``GPT2Config`` into the equivalent ``GPTConfig``."""
    n_inner = config.n_inner or 4 * config.n_embd
    if n_inner % config.n_embd:
        raise ValueError(
            f"GPT-2 n_inner ({n_inner}) is not a multiple of n_embd ({config.n_embd}); cannot convert"
        )
    act = {"gelu_new": "gelu_pytorch_tanh", "gelu_pytorch_tanh": "gelu_pytorch_tanh", "gelu": "gelu"}
    if config.activation_function not in act:
        raise ValueError(f"GPT-2 activation {config.activation_function!r} has no hfpipe equivalent")
    return GPTConfig(
        vocab_size=config.vocab_size,
        context_length=config.n_positions,
        emb_dim=config.n_embd,
        n_heads=config.n_head,
        n_layers=config.n_layer,
        drop_rate=config.resid_pdrop,
        qkv_bias=True,
        ff_mult=n_inner // config.n_embd,
        activation_function=act[config.activation_function],
        layer_norm_epsilon=config.layer_norm_epsilon,
        initializer_range=config.initializer_range,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        tie_word_embeddings=config.tie_word_embeddings,
    )


def gpt_config_to_gpt2(config: GPTConfig) -> GPT2Config:
    """Translate a ``GPTConfig`` into the equivalent ``GPT2Config`` (GPT-2 always has a QKV bias).

    Raises ValueError, naming the switches, for a layout other than the book's (GPT-2's)."""
    switches = non_book_switches(config)
    if switches:
        raise ValueError(
            f"GPT-2 has the book's layout; this model has {', '.join(switches)}, which GPT-2 (and its GGUF "
            "export) cannot hold"
        )
    return GPT2Config(
        vocab_size=config.vocab_size,
        n_positions=config.context_length,
        n_ctx=config.context_length,  # transformers no longer uses it; llama.cpp's convert_hf_to_gguf.py reads it
        n_embd=config.emb_dim,
        n_layer=config.n_layers,
        n_head=config.n_heads,
        n_inner=config.intermediate_size,
        activation_function="gelu_new" if config.activation_function != "gelu" else "gelu",
        resid_pdrop=config.drop_rate,
        embd_pdrop=config.drop_rate,
        attn_pdrop=config.drop_rate,
        layer_norm_epsilon=config.layer_norm_epsilon,
        initializer_range=config.initializer_range,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        tie_word_embeddings=config.tie_word_embeddings,
    )


def _key_pairs(n_layers: int):
    pairs = [(ours, theirs, False) for ours, theirs in _TOP_MAP]
    for i in range(n_layers):
        pairs += [(f"model.blocks.{i}.{o}", f"transformer.h.{i}.{t}", tr) for o, t, tr in _BLOCK_MAP]
    return pairs


def gpt2_to_gpt(model: GPT2LMHeadModel) -> GPTForCausalLM:
    """Convert a transformers ``GPT2LMHeadModel`` into an hfpipe ``GPTForCausalLM`` (same dtype)."""
    config = gpt2_config_to_gpt(model.config)
    src = model.state_dict()
    with torch.device("meta"):
        out = GPTForCausalLM(config)
    state = {}
    for ours, theirs, transpose in _key_pairs(config.n_layers):
        tensor = src[theirs]
        state[ours] = tensor.t().contiguous() if transpose else tensor.clone()
    out.load_state_dict(state, assign=True, strict=True)
    out.tie_weights()
    return out.to(model.dtype).eval()


def gpt_to_gpt2(model: GPTForCausalLM) -> GPT2LMHeadModel:
    """Convert an hfpipe ``GPTForCausalLM`` into a transformers ``GPT2LMHeadModel`` (for GPT-2-only tools)."""
    config = gpt_config_to_gpt2(model.config)
    src = model.state_dict()
    out = GPT2LMHeadModel(config)
    state = out.state_dict()
    for ours, theirs, transpose in _key_pairs(model.config.n_layers):
        if ours not in src:  # no QKV bias in hfpipe: GPT-2's stays zero
            state[theirs] = torch.zeros_like(state[theirs])
            continue
        tensor = src[ours]
        state[theirs] = tensor.t().contiguous() if transpose else tensor.clone()
    out.load_state_dict(state, strict=True)
    if config.tie_word_embeddings:
        out.tie_weights()
    return out.to(model.dtype).eval()
