"""Native export: an hfpipe GPT with Llama's layout saved as transformers' own ``LlamaForCausalLM`` (or, with
QK-norm, ``Qwen3ForCausalLM``), and such a directory imported back as an hfpipe GPT.

The exported directory needs no hfpipe and no ``trust_remote_code``: transformers, vLLM, llama.cpp's
``convert_hf_to_gguf.py``, MLX and TGI load it as any Llama or Qwen3. Weights are renamed and split: the
fused ``att.qkv`` into ``q_proj``/``k_proj``/``v_proj``, ``ff.gate_up`` into ``gate_proj``/``up_proj``.

What maps exactly, beyond the names: an RMSNorm without weight is Llama's with a weight of ones; a bias
hfpipe lacks where the native class has one (``attention_bias`` covers q, k, v and o together) is zeros.
A layout the native classes cannot compute (LayerNorm, learned positions, GELU or ReLU² MLPs, an MLP bias in
Qwen3) is refused with one line naming the switch.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel, Qwen3Config, Qwen3ForCausalLM
from transformers.initialization import no_init_weights

from hfpipe.io import save_atomically
from hfpipe.loading import check_exists, is_adapter, load_model, load_tokenizer, read_config
from hfpipe.models.gpt import GPTConfig, GPTForCausalLM
from hfpipe.models.gpt.configuration_gpt import rope_parameters

logger = logging.getLogger(__name__)

NATIVE_TYPES = {"llama": LlamaForCausalLM, "qwen3": Qwen3ForCausalLM}
_CLASS_NAMES = {"llama": "Llama", "qwen3": "Qwen3"}
# (hfpipe switch, the value Llama and Qwen3 compute, what they need, in words)
_REQUIRED = [
    ("position", "rope", "rotary positions, position='rope'"),
    ("norm", "rmsnorm", "rmsnorm"),
    ("mlp", "swiglu", "swiglu"),
]


def native_type(config: GPTConfig) -> str:
    """``"llama"`` or ``"qwen3"`` (with ``qk_norm``), the native class ``config``'s layout is; ValueError naming
    the switch when it has none."""
    target = "qwen3" if config.qk_norm else "llama"
    name = _CLASS_NAMES[target]
    for switch, value, needs in _REQUIRED:
        if getattr(config, switch) != value:
            raise ValueError(
                f"cannot export as {name}: {switch}={getattr(config, switch)!r} ({name} needs {needs})"
            )
    if target == "qwen3" and config.bias:
        raise ValueError(f"cannot export as {name}: bias=True ({name}'s MLP has no bias; set bias=False)")
    return target


def native_config(config: GPTConfig) -> LlamaConfig | Qwen3Config:
    """The ``LlamaConfig``/``Qwen3Config`` of the same model (ValueError where there is none)."""
    target = native_type(config)
    kwargs = dict(
        vocab_size=config.vocab_size,
        hidden_size=config.emb_dim,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_kv_heads,
        head_dim=config.head_dim,
        hidden_act="silu",
        max_position_embeddings=config.context_length,
        initializer_range=config.initializer_range,
        rms_norm_eps=config.layer_norm_epsilon,
        tie_word_embeddings=config.tie_word_embeddings,
        rope_parameters=rope_parameters(config),
        attention_bias=config.qkv_bias or config.bias,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )
    if target == "llama":
        return LlamaConfig(**kwargs, mlp_bias=config.bias)
    return Qwen3Config(**kwargs, use_sliding_window=False)


def gpt_config_from_native(config: LlamaConfig | Qwen3Config) -> GPTConfig:
    """The hfpipe ``GPTConfig`` of a Llama or Qwen3 config (ValueError for what hfpipe's GPT cannot compute)."""
    name = type(config).__name__
    if config.hidden_act != "silu":
        raise ValueError(
            f"cannot import {name}: hidden_act={config.hidden_act!r} (hfpipe's swiglu is SiLU-gated)"
        )
    if config.head_dim * config.num_attention_heads != config.hidden_size:
        raise ValueError(
            f"cannot import {name}: head_dim {config.head_dim} x {config.num_attention_heads} heads != hidden_size "
            f"{config.hidden_size} (hfpipe's head size is hidden_size / heads)"
        )
    if getattr(config, "use_sliding_window", False):
        raise ValueError(
            f"cannot import {name}: use_sliding_window=True (hfpipe attends to the whole context)"
        )
    rope = dict(getattr(config, "rope_parameters", None) or {})
    theta = rope.pop("rope_theta", getattr(config, "rope_theta", 10000.0))
    scaling = rope if rope.get("rope_type", "default") != "default" else None
    attention_bias, mlp_bias = config.attention_bias, getattr(config, "mlp_bias", False)
    return GPTConfig(
        vocab_size=config.vocab_size,
        context_length=config.max_position_embeddings,
        emb_dim=config.hidden_size,
        n_heads=config.num_attention_heads,
        n_kv_heads=config.num_key_value_heads,
        n_layers=config.num_hidden_layers,
        intermediate_size=config.intermediate_size,
        drop_rate=0.0,
        position="rope",
        rope_theta=float(theta),
        rope_scaling_parameters=scaling,
        norm="rmsnorm",
        mlp="swiglu",
        qk_norm=config.model_type == "qwen3",
        qkv_bias=attention_bias,
        bias=attention_bias or mlp_bias,  # o_proj and the MLP in hfpipe: zeros where one lacks it
        layer_norm_epsilon=config.rms_norm_eps,
        initializer_range=config.initializer_range,
        tie_word_embeddings=config.tie_word_embeddings,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )


def _layer_names(i: int) -> dict[str, str]:
    """hfpipe name -> native name for one block's unsplit tensors."""
    ours, theirs = f"model.blocks.{i}.", f"model.layers.{i}."
    pairs = {
        "norm1.weight": "input_layernorm.weight",
        "norm2.weight": "post_attention_layernorm.weight",
        "att.q_norm.weight": "self_attn.q_norm.weight",
        "att.k_norm.weight": "self_attn.k_norm.weight",
        "att.out_proj.weight": "self_attn.o_proj.weight",
        "att.out_proj.bias": "self_attn.o_proj.bias",
        "ff.fc2.weight": "mlp.down_proj.weight",
        "ff.fc2.bias": "mlp.down_proj.bias",
    }
    return {ours + a: theirs + b for a, b in pairs.items()}


def _split_sizes(config: GPTConfig) -> tuple[list[int], list[int]]:
    """Rows of the fused q|k|v and gate|up projections, in order."""
    q, kv = config.n_heads * config.head_dim, config.n_kv_heads * config.head_dim
    return [q, kv, kv], [config.intermediate_size, config.intermediate_size]


def _fused_names(i: int) -> list[tuple[str, list[str]]]:
    """(hfpipe fused tensor, its native parts in order) for one block, weight and bias."""
    ours, theirs = f"model.blocks.{i}.", f"model.layers.{i}."
    fused = []
    for kind in ("weight", "bias"):
        fused.append((f"{ours}att.qkv.{kind}", [f"{theirs}self_attn.{p}_proj.{kind}" for p in "qkv"]))
        fused.append((f"{ours}ff.gate_up.{kind}", [f"{theirs}mlp.{p}_proj.{kind}" for p in ("gate", "up")]))
    return fused


def _top_names() -> dict[str, str]:
    return {
        "model.tok_emb.weight": "model.embed_tokens.weight",
        "model.final_norm.weight": "model.norm.weight",
        "lm_head.weight": "lm_head.weight",
    }


def _fill(state: dict, wanted: dict[str, torch.Tensor]) -> dict:
    """Give every tensor of ``wanted`` (name -> a like-shaped tensor) that ``state`` lacks its neutral value:
    ones for a norm weight, zeros for a bias. Anything else missing is a mapping error."""
    for name, like in wanted.items():
        if name in state:
            continue
        if name.endswith("norm.weight"):
            state[name] = torch.ones_like(like)
        elif name.endswith(".bias"):
            state[name] = torch.zeros_like(like)
        elif name == "lm_head.weight":
            continue  # tied: the head is the embedding
        else:
            raise ValueError(f"no weight for {name}: the checkpoint and its config disagree")
    return state


def _load(model: PreTrainedModel, state: dict) -> PreTrainedModel:
    """Load ``state`` (strict but for a tied head) into ``model``; then tie, eval mode."""
    expected = model.state_dict()
    state = _fill(state, expected)
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise ValueError(f"{type(model).__name__} has no place for {unexpected[:3]}: the layouts differ")
    missing = model.load_state_dict(state, strict=False).missing_keys
    if [k for k in missing if k != "lm_head.weight"]:
        raise ValueError(f"{type(model).__name__}: no weight given for {missing[:3]}")
    if "lm_head.weight" in missing and not model.config.tie_word_embeddings:
        raise ValueError("the checkpoint has no lm_head.weight but its embeddings are not tied")
    model.tie_weights()
    return model.eval()


def to_native(model: GPTForCausalLM) -> LlamaForCausalLM | Qwen3ForCausalLM:
    """The same model as transformers' ``LlamaForCausalLM``/``Qwen3ForCausalLM`` (same dtype and values)."""
    config = native_config(model.config)
    src = model.state_dict()
    qkv_rows, gate_up_rows = _split_sizes(model.config)
    state = {theirs: src[ours] for ours, theirs in _top_names().items() if ours in src}
    for i in range(model.config.n_layers):
        state.update({theirs: src[ours] for ours, theirs in _layer_names(i).items() if ours in src})
        for ours, parts in _fused_names(i):
            if ours in src:
                rows = qkv_rows if ".qkv." in ours else gate_up_rows
                state.update(zip(parts, src[ours].split(rows, dim=0)))
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    with no_init_weights():  # every weight is loaded next (_load checks it): a random init would be wasted
        native = NATIVE_TYPES[config.model_type](config).to(model.dtype)
    return _load(native, {k: v.clone() for k, v in state.items()})


def from_native(model: LlamaForCausalLM | Qwen3ForCausalLM) -> GPTForCausalLM:
    """A Llama or Qwen3 ``*ForCausalLM`` as an hfpipe ``GPTForCausalLM`` (same dtype and values)."""
    config = gpt_config_from_native(model.config)
    src = model.state_dict()
    state = {ours: src[theirs] for ours, theirs in _top_names().items() if theirs in src}
    for i in range(config.n_layers):
        state.update({ours: src[theirs] for ours, theirs in _layer_names(i).items() if theirs in src})
        for ours, parts in _fused_names(i):
            if all(p in src for p in parts):
                state[ours] = torch.cat([src[p] for p in parts], dim=0)
    if config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    with no_init_weights():
        gpt = GPTForCausalLM(config).to(model.dtype)
    return _load(gpt, {k: v.clone() for k, v in state.items()})


def _check_output_dir(source: str, output_dir: str | os.PathLike) -> None:
    if Path(output_dir).expanduser().resolve() == Path(source).expanduser().resolve():
        raise ValueError(
            f"output_dir {str(output_dir)!r} is the model being converted; choose another directory"
        )


def _save(model: PreTrainedModel, tokenizer, output_dir: str | os.PathLike) -> Path:
    def save(tmp: Path) -> None:
        model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)

    return save_atomically(save, output_dir)


def _tokenizer_or_none(source: str):
    try:
        return load_tokenizer(source)
    except (OSError, ValueError):
        logger.warning("no tokenizer found at %s; saving the model alone", source)
        return None


def export_native(model_name_or_path: str | os.PathLike, output_dir: str | os.PathLike) -> Path:
    """Save an hfpipe checkpoint (or a peft adapter on one, merged) as a Llama or Qwen3 directory with its
    tokenizer; returns the directory. ValueError, naming the switch, for a layout with no native class."""
    source = str(model_name_or_path)
    check_exists(source)
    _check_output_dir(source, output_dir)
    if not is_adapter(source):
        config = read_config(source)
        if config.get("model_type") in NATIVE_TYPES:
            raise ValueError(f"{source} is already a native {config['model_type']} model")
        if config.get("model_type") == GPTConfig.model_type:
            native_type(GPTConfig.from_dict(config))  # refuse before loading the weights
    model = load_model(source, merge_adapter=True)
    if not isinstance(model, GPTForCausalLM):
        raise ValueError(
            f"{source} is a {type(model).__name__}; native export takes an hfpipe GPT checkpoint"
        )
    native = to_native(model)
    path = _save(native, _tokenizer_or_none(source), output_dir)
    logger.info("exported %s -> %s (%s)", source, path, type(native).__name__)
    return path


def import_native(model_name_or_path: str | os.PathLike, output_dir: str | os.PathLike) -> Path:
    """Save a Llama or Qwen3 checkpoint directory (or Hub id) as an hfpipe GPT directory with its tokenizer."""
    source = str(model_name_or_path)
    _check_output_dir(source, output_dir)
    model_type = read_config(source).get("model_type")
    if model_type not in NATIVE_TYPES:
        raise ValueError(f"{source} is a {model_type!r} model; the import takes {' or '.join(NATIVE_TYPES)}")
    gpt = from_native(load_model(source))
    path = _save(gpt, _tokenizer_or_none(source), output_dir)
    logger.info("imported %s (%s) -> %s", source, model_type, path)
    return path


def max_logit_difference(
    source: str | os.PathLike, converted: str | os.PathLike, tolerance: float = 1e-4
) -> float:
    """Run both checkpoints (float32) on a few token ids; return the largest absolute logit difference, or
    raise ValueError when it exceeds ``tolerance`` (the conversion would have changed the model)."""
    first, second = (load_model(str(p), dtype=torch.float32, merge_adapter=True) for p in (source, converted))
    length = min(16, first.config.max_position_embeddings)
    ids = torch.arange(length)[None] % first.config.vocab_size
    with torch.no_grad():
        worst = float((first(ids).logits - second(ids).logits).abs().max())
    if not worst <= tolerance:
        raise ValueError(f"{converted}: its logits differ from {source}'s by {worst:.2e} (> {tolerance}): "
                         "the conversion changed the model")  # fmt: skip
    return worst
