import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

from hfpipe.evaluation.perplexity import block_perplexity
from hfpipe.export.compare import directory_size, text_blocks
from hfpipe.export.quantize import quantize_int8
from hfpipe.models.gpt import GPT_ARCHITECTURES

from .conftest import TEXT, tiny_causal_lm

pytest.importorskip("torchao")
sys.path.insert(0, str(Path(__file__).parents[1]))
from without_hfpipe import run_without_hfpipe  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _int8_types(model) -> set[str]:
    return {type(p).__name__ for p in model.parameters()}


def test_quantized_dir_reloads_with_automodel_and_stays_close(tmp_path, tiny_dir, bpe_tokenizer):
    out = quantize_int8(tiny_dir, tmp_path / "int8")
    original = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    quantized = AutoModelForCausalLM.from_pretrained(out).eval()
    assert {"Int8Tensor", "IntxUnpackedToInt8Tensor"} <= _int8_types(quantized)
    assert (out / "tokenizer.json").is_file()
    blocks = text_blocks(bpe_tokenizer, TEXT, 64, max_blocks=4)
    ppl_fp32, ppl_int8 = block_perplexity(original, blocks), block_perplexity(quantized, blocks)
    assert ppl_int8 == pytest.approx(ppl_fp32, rel=0.02)
    # int8 weights + per-row scales: well under half of fp32 even for this tiny model
    assert directory_size(out) < 0.5 * directory_size(tiny_dir)
    prompt = blocks[:1, :8]
    greedy = quantized.generate(prompt, max_new_tokens=8, do_sample=False)
    assert greedy.shape == (1, 16)


def test_tied_and_gpt2_checkpoints_quantize(tmp_path, bpe_tokenizer):
    tied = tiny_causal_lm(bpe_tokenizer, train_steps=0, tie_word_embeddings=True)
    tied.save_pretrained(tmp_path / "tied")
    bpe_tokenizer.save_pretrained(tmp_path / "tied")
    q = AutoModelForCausalLM.from_pretrained(quantize_int8(tmp_path / "tied", tmp_path / "tied-int8"))
    ids = torch.randint(0, len(bpe_tokenizer), (1, 12))
    torch.testing.assert_close(q(ids).logits, tied(ids).logits, atol=0.05, rtol=0)

    gpt2 = GPT2LMHeadModel(
        GPT2Config(vocab_size=len(bpe_tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=2)
    )
    gpt2.save_pretrained(tmp_path / "gpt2")
    bpe_tokenizer.save_pretrained(tmp_path / "gpt2")
    q = AutoModelForCausalLM.from_pretrained(quantize_int8(tmp_path / "gpt2", tmp_path / "gpt2-int8"))
    assert "Int8Tensor" in _int8_types(q)
    torch.testing.assert_close(q(ids).logits, gpt2.eval()(ids).logits, atol=0.2, rtol=0)


@pytest.mark.parametrize("architecture", ["llama", "nanochat"])
def test_modern_architectures_quantize(tmp_path, bpe_tokenizer, architecture):
    """Every Linear (fused qkv with grouped-query widths, swiglu's gate_up) is int8; norms stay float."""
    switches = {k: v for k, v in GPT_ARCHITECTURES[architecture].items() if k != "n_kv_heads"}
    model = tiny_causal_lm(
        bpe_tokenizer, n_heads=4, n_kv_heads=2 if architecture == "llama" else 1, **switches
    )
    model.save_pretrained(tmp_path / "model")
    bpe_tokenizer.save_pretrained(tmp_path / "model")
    quantized = AutoModelForCausalLM.from_pretrained(
        quantize_int8(tmp_path / "model", tmp_path / "int8")
    ).eval()
    linears = [m for m in quantized.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(type(m.weight).__name__ == "Int8Tensor" for m in linears)
    blocks = text_blocks(bpe_tokenizer, TEXT, 64, max_blocks=4)
    assert block_perplexity(quantized, blocks) == pytest.approx(block_perplexity(model, blocks), rel=0.02)


def test_bad_input_is_refused_and_nothing_written(tmp_path, tiny_dir):
    with pytest.raises(ValueError, match="dtype 'int4'"):
        quantize_int8(tiny_dir, tmp_path / "a", dtype="int4")
    out = quantize_int8(tiny_dir, tmp_path / "int8")
    with pytest.raises(ValueError, match="already quantized"):
        quantize_int8(out, tmp_path / "b")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        quantize_int8(tmp_path / "missing", tmp_path / "c")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["int8"]  # no temp directory left either


REMOTE_CODE_CHILD = r"""
import torch
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
assert type(model.lm_head.weight).__name__ == "Int8Tensor"
torch.save(model(torch.load(sys.argv[2])).logits.detach(), sys.argv[3])
"""


def test_quantized_dir_loads_as_remote_code_without_hfpipe(tmp_path, tiny_dir):
    out = quantize_int8(tiny_dir, tmp_path / "int8")
    ids = torch.randint(0, 100, (1, 10))
    torch.save(ids, tmp_path / "ids.pt")
    proc = run_without_hfpipe(
        REMOTE_CODE_CHILD, out, tmp_path / "ids.pt", tmp_path / "logits.pt", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with torch.no_grad():
        expected = AutoModelForCausalLM.from_pretrained(out)(ids).logits
    torch.testing.assert_close(torch.load(tmp_path / "logits.pt"), expected)
