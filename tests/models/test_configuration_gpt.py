"""GPTConfig: book field names, standard aliases, presets, architecture switches, validation, save/load."""

import json

import pytest
from transformers import AutoConfig, BertConfig

from hfpipe import GPT_PRESETS, GPTConfig
from hfpipe.models.gpt.configuration_gpt import (
    GPT_ARCHITECTURES,
    architecture_name,
    describe_architecture,
    non_book_switches,
    rope_parameters,
)


def test_book_field_names_and_defaults():
    config = GPTConfig()
    assert (config.vocab_size, config.context_length, config.emb_dim) == (50257, 1024, 768)
    assert (config.n_heads, config.n_layers, config.drop_rate, config.qkv_bias) == (12, 12, 0.1, False)
    assert config.model_type == "hfpipe_gpt"


def test_standard_names_resolve_to_book_names():
    config = GPTConfig(emb_dim=96, n_layers=3, n_heads=6, context_length=128)
    assert config.hidden_size == 96
    assert config.num_hidden_layers == 3
    assert config.num_attention_heads == 6
    assert config.max_position_embeddings == 128
    assert config.head_dim == 16
    # ...in both directions: setting the standard name sets the book's field
    aliased = GPTConfig(
        hidden_size=48, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=32
    )
    assert (aliased.emb_dim, aliased.n_layers, aliased.n_heads, aliased.context_length) == (48, 2, 4, 32)
    aliased.hidden_size = 80
    assert aliased.emb_dim == 80
    assert GPTConfig(n_heads=4, emb_dim=64, num_key_value_heads=2).n_kv_heads == 2


@pytest.mark.parametrize(
    "name, emb_dim, n_layers, n_heads",
    [
        ("gpt2-small", 768, 12, 12),
        ("gpt2-medium", 1024, 24, 16),
        ("gpt2-large", 1280, 36, 20),
        ("gpt2-xl", 1600, 48, 25),
    ],
)
def test_gpt2_presets(name, emb_dim, n_layers, n_heads):
    config = GPTConfig.from_preset(name)
    assert (config.emb_dim, config.n_layers, config.n_heads) == (emb_dim, n_layers, n_heads)
    assert (config.vocab_size, config.context_length) == (50257, 1024)
    assert config.eos_token_id == 50256


def test_tiny_preset_and_overrides():
    config = GPTConfig.from_preset("tiny")
    assert (config.vocab_size, config.context_length, config.emb_dim) == (512, 64, 64)
    assert (config.n_layers, config.n_heads, config.drop_rate) == (2, 4, 0.0)
    assert config.eos_token_id is None  # 50256 does not exist in a 512-token vocabulary
    assert GPTConfig.from_preset("tiny", n_layers=3, qkv_bias=True).n_layers == 3
    assert set(GPT_PRESETS) == {"gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl", "tiny"}


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown GPT preset 'gpt2-huge'.*gpt2-small"):
        GPTConfig.from_preset("gpt2-huge")
    with pytest.raises(ValueError, match="unknown GPT architecture 'llama2'; choose one of.*nanochat"):
        GPTConfig.from_preset("tiny", "llama2")


def test_book_is_the_default_layout():
    config = GPTConfig()
    assert (config.position, config.norm, config.norm_weight, config.mlp) == (
        "learned",
        "layernorm",
        True,
        "gelu",
    )
    assert (config.qk_norm, config.bias, config.n_kv_heads, config.intermediate_size) == (
        False,
        True,
        12,
        3072,
    )
    assert rope_parameters(config) is None and non_book_switches(config) == []
    assert describe_architecture(config) == "book (learned, layernorm, gelu)"
    assert (
        GPTConfig.from_preset("gpt2-small", "book").to_dict() == GPTConfig.from_preset("gpt2-small").to_dict()
    )


@pytest.mark.parametrize(
    "size, n_kv_heads, intermediate_size",
    [("tiny", 2, 192), ("gpt2-small", 3, 2048), ("gpt2-medium", 4, 2752), ("gpt2-xl", 25, 4288)],
)
def test_llama_preset(size, n_kv_heads, intermediate_size):
    config = GPTConfig.from_preset(size, "llama")
    assert (config.position, config.norm, config.mlp, config.bias, config.qkv_bias) == (
        "rope",
        "rmsnorm",
        "swiglu",
        False,
        False,
    )
    # a quarter of the heads (at least 2) when that divides them; SwiGLU 2/3 of 4x, a multiple of 64
    assert (config.n_kv_heads, config.intermediate_size) == (n_kv_heads, intermediate_size)
    assert config.num_key_value_heads == n_kv_heads
    assert rope_parameters(config) == {"rope_type": "default", "rope_theta": 10000.0}
    assert architecture_name(config) == "llama"
    assert GPTConfig.from_preset(size, "llama", n_kv_heads=1).n_kv_heads == 1  # overrides win


def test_nanochat_preset():
    config = GPTConfig.from_preset("tiny", "nanochat")
    assert (config.position, config.norm, config.norm_weight, config.mlp, config.qk_norm) == (
        "rope",
        "rmsnorm",
        False,
        "relu2",
        True,
    )
    assert (config.n_kv_heads, config.intermediate_size, config.bias, config.tie_word_embeddings) == (
        1,
        256,
        False,
        False,
    )
    assert describe_architecture(config) == (
        "nanochat (rope, rmsnorm without weight, relu2, 1 of 4 kv heads, qk-norm, no bias)"
    )
    assert non_book_switches(config) == [
        "position='rope'",
        "norm='rmsnorm'",
        "norm_weight=False",
        "mlp='relu2'",
        "qk_norm=True",
        "bias=False",
        "n_kv_heads=1",
    ]
    assert architecture_name(GPTConfig.from_preset("tiny", "nanochat", mlp="swiglu")) == "custom"
    assert set(GPT_ARCHITECTURES) == {"book", "llama", "nanochat"}


def test_config_saved_before_the_switches_loads_as_book(tmp_path):
    """A config.json as hfpipe wrote it before the switches existed (none of their keys) is the book's layout."""
    saved = {
        "activation_function": "gelu_pytorch_tanh", "architectures": ["GPTForCausalLM"],
        "auto_map": {"AutoConfig": "configuration_gpt.GPTConfig"}, "bos_token_id": 1, "context_length": 64,
        "drop_rate": 0.0, "dtype": "float32", "emb_dim": 64, "eos_token_id": 1, "ff_mult": 4,
        "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "model_type": "hfpipe_gpt", "n_heads": 4,
        "n_layers": 2, "pad_token_id": 0, "qkv_bias": False, "tie_word_embeddings": False,
        "transformers_version": "5.25.0", "use_cache": True, "vocab_size": 512,
    }  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(saved))
    config = GPTConfig.from_pretrained(tmp_path)
    assert non_book_switches(config) == [] and architecture_name(config) == "book"
    assert (config.n_kv_heads, config.intermediate_size) == (4, 256)


@pytest.mark.parametrize("architecture", sorted(GPT_ARCHITECTURES))
def test_architecture_survives_save_and_load(tmp_path, architecture):
    config = GPTConfig.from_preset(
        "tiny", architecture, rope_theta=500.0, rope_scaling_parameters={"rope_type": "linear", "factor": 2.0}
    )
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert loaded.to_diff_dict() == config.to_diff_dict()
    assert architecture_name(loaded) == architecture


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"emb_dim": 100, "n_heads": 12}, r"emb_dim \(100\) must be divisible by n_heads \(12\)"),
        ({"emb_dim": 0}, "emb_dim must be a positive integer"),
        ({"n_layers": -1}, "n_layers must be a positive integer"),
        ({"n_heads": 0}, "n_heads must be a positive integer"),
        ({"vocab_size": 0}, "vocab_size must be a positive integer"),
        ({"context_length": 2.5}, "context_length must be a positive integer"),
        ({"drop_rate": 1.0}, r"drop_rate must be in \[0, 1\)"),
        ({"drop_rate": -0.1}, r"drop_rate must be in \[0, 1\)"),
        ({"activation_function": "relu"}, "activation_function must be"),
        ({"position": "alibi"}, "GPTConfig.position must be one of 'learned', 'rope', got 'alibi'"),
        ({"norm": "batchnorm"}, "GPTConfig.norm must be one of 'layernorm', 'rmsnorm', got 'batchnorm'"),
        ({"mlp": "geglu"}, "GPTConfig.mlp must be one of 'gelu', 'swiglu', 'relu2', got 'geglu'"),
        ({"n_heads": 12, "n_kv_heads": 5}, r"n_kv_heads \(5\) must divide n_heads \(12\)"),
        ({"n_kv_heads": 0}, "n_kv_heads must be a positive integer, got 0"),
        ({"intermediate_size": -1}, "intermediate_size must be a positive integer"),
        ({"position": "rope", "emb_dim": 36, "n_heads": 4}, "'rope' needs an even head size.* = 9"),
        ({"position": "rope", "rope_scaling_parameters": {"rope_type": "wavy"}}, "rope_type 'wavy'; choose"),
    ],
)
def test_invalid_configs_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**kwargs)


def test_save_load_roundtrip(tmp_path):
    config = GPTConfig.from_preset("tiny", qkv_bias=True, drop_rate=0.2, tie_word_embeddings=True)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, GPTConfig)
    assert loaded.to_diff_dict() == config.to_diff_dict()


def test_loading_another_model_type_is_an_error(tmp_path):
    BertConfig().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="model_type 'bert', not 'hfpipe_gpt'"):
        GPTConfig.from_pretrained(tmp_path)
