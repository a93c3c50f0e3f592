import json

import gguf
import numpy as np
import pytest
import torch

from hfpipe.convert import gpt_to_gpt2
from hfpipe.export.gguf import compare_gguf, export_gguf, gguf_tensors
from hfpipe.loading import load_model
from hfpipe.tokenization import build_char_tokenizer

from .conftest import TEXT, tiny_causal_lm


def _field(reader, key):
    return reader.fields[key].contents()


def test_gguf_tensors_and_metadata_match_the_checkpoint(tmp_path, tiny_dir, bpe_tokenizer):
    path = export_gguf(tiny_dir, tmp_path / "m.gguf")
    model = load_model(tiny_dir)  # the weights exported
    expected = gguf_tensors(gpt_to_gpt2(model))
    assert len(expected) == 4 + 2 * 12 + 1  # wte, wpe, ln_f w/b, 12 per block, output
    assert compare_gguf(path, expected) == 0.0
    np.testing.assert_array_equal(
        expected["blk.0.attn_qkv.weight"], model.model.blocks[0].att.qkv.weight.detach().numpy()
    )

    reader = gguf.GGUFReader(path)
    assert _field(reader, "general.architecture") == "gpt2"
    assert _field(reader, "gpt2.block_count") == 2
    assert _field(reader, "gpt2.context_length") == 64
    assert _field(reader, "tokenizer.ggml.model") == "gpt2"
    assert _field(reader, "tokenizer.ggml.pre") == "gpt-2"
    tokens = _field(reader, "tokenizer.ggml.tokens")
    assert tokens == [bpe_tokenizer.convert_ids_to_tokens(i) for i in range(len(bpe_tokenizer))]
    types = _field(reader, "tokenizer.ggml.token_type")
    assert types[bpe_tokenizer.eos_token_id] == gguf.TokenType.CONTROL
    assert types[bpe_tokenizer.pad_token_id] == gguf.TokenType.CONTROL
    assert types[100] == gguf.TokenType.NORMAL
    merges = json.loads(bpe_tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    assert _field(reader, "tokenizer.ggml.merges") == [" ".join(m) for m in merges]
    assert _field(reader, "tokenizer.ggml.eos_token_id") == bpe_tokenizer.eos_token_id
    assert _field(reader, "tokenizer.ggml.padding_token_id") == bpe_tokenizer.pad_token_id
    assert _field(reader, "tokenizer.ggml.add_bos_token") is False
    template = _field(reader, "tokenizer.chat_template")
    assert "<|assistant|>" in template and "{% generation %}" not in template


def test_f16_export_rounds_only_matrices(tmp_path, tiny_dir, bpe_tokenizer):
    path = export_gguf(tiny_dir, tmp_path / "m16.gguf", outtype="f16")
    types = {t.name: t.tensor_type for t in gguf.GGUFReader(path).tensors}
    assert types["blk.0.ffn_up.weight"] == gguf.GGMLQuantizationType.F16
    assert types["blk.0.ffn_up.bias"] == gguf.GGMLQuantizationType.F32
    assert 0 < compare_gguf(path, gguf_tensors(gpt_to_gpt2(tiny_causal_lm(bpe_tokenizer)))) < 1e-2


def test_unfaithful_exports_are_refused_and_nothing_written(tmp_path, bpe_tokenizer):
    char_tok = build_char_tokenizer(TEXT)
    torch.manual_seed(0)
    char_model = tiny_causal_lm(char_tok, train_steps=0)
    char_model.save_pretrained(tmp_path / "char")
    char_tok.save_pretrained(tmp_path / "char")
    with pytest.raises(ValueError, match="WordLevel"):
        export_gguf(tmp_path / "char", tmp_path / "out" / "char.gguf")

    erf = tiny_causal_lm(bpe_tokenizer, train_steps=0, activation_function="gelu")
    erf.save_pretrained(tmp_path / "erf")
    bpe_tokenizer.save_pretrained(tmp_path / "erf")
    with pytest.raises(ValueError, match="tanh"):
        export_gguf(tmp_path / "erf", tmp_path / "out" / "erf.gguf")

    llama = tiny_causal_lm(bpe_tokenizer, train_steps=0, position="rope", norm="rmsnorm", mlp="swiglu")
    llama.save_pretrained(tmp_path / "llama")
    bpe_tokenizer.save_pretrained(tmp_path / "llama")
    with pytest.raises(ValueError, match="this model has position='rope', norm='rmsnorm', mlp='swiglu'"):
        export_gguf(tmp_path / "llama", tmp_path / "out" / "llama.gguf")

    with pytest.raises(ValueError, match="outtype"):
        export_gguf(tmp_path / "erf", tmp_path / "out" / "x.gguf", outtype="q2_k")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
