"""GPTConfig: book field names, standard aliases, presets, validation, save/load."""

import pytest
from transformers import AutoConfig, BertConfig

from hfpipe import GPT_PRESETS, GPTConfig


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
