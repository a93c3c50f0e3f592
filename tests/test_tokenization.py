import functools
import logging
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer
from trl import ScriptArguments

import hfpipe.tokenizer_run
from hfpipe.data import DataArguments
from hfpipe.tokenization import (
    EOS_TOKEN,
    FINGERPRINT_FILE,
    PAD_TOKEN,
    SEED_SPECIAL_TOKENS,
    TokenizerArguments,
    build_char_tokenizer,
    bytes_per_token,
    load_gpt2_tokenizer,
    save_tokenizer,
    train_bpe_tokenizer,
)
from hfpipe.tokenizer_run import tokenizer_for_run

CORPUS = [
    "The quick brown fox jumps over the lazy dog. " * 3,
    "Ünïcödé tëxt, 日本語のテキスト, emoji 🎉🚀 and tabs\tand\nnewlines.",
    "def f(x):\n    return x * 2  # code too\n",
] * 20


@functools.cache
def bpe():
    return train_bpe_tokenizer(
        CORPUS, vocab_size=400, min_frequency=2, extra_special_tokens=SEED_SPECIAL_TOKENS
    )


def test_gpt2_reference_counts(shared_data, tmp_path):
    tok = load_gpt2_tokenizer(shared_data / "gpt2-tokenizer")
    assert tok("Hello, I am")["input_ids"] == [15496, 11, 314, 716]
    text = (shared_data / "the-verdict.txt").read_text(encoding="utf-8")
    assert len(tok(text)["input_ids"]) == 5145
    assert tok.eos_token == EOS_TOKEN and tok.eos_token_id == 50256
    assert tok.pad_token == PAD_TOKEN and tok.pad_token_id == 50257
    # the same files under their Hub names, and the saved directory through AutoTokenizer
    shutil.copy(shared_data / "gpt2-tokenizer/encoder.json", tmp_path / "vocab.json")
    shutil.copy(shared_data / "gpt2-tokenizer/vocab.bpe", tmp_path / "merges.txt")
    assert load_gpt2_tokenizer(tmp_path, pad_token=None)("Hello, I am")["input_ids"] == [15496, 11, 314, 716]
    saved = AutoTokenizer.from_pretrained(save_tokenizer(tok, tmp_path / "saved"))
    assert saved.is_fast and len(saved(text)["input_ids"]) == 5145


def test_missing_tokenizer_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        load_gpt2_tokenizer(tmp_path / "nope")


def test_trained_bpe_saves_and_loads(tmp_path):
    tok = bpe()
    assert 256 + 9 < len(tok) <= 400  # bytes + specials + merges (the corpus is too small for all 400)
    assert tok.convert_ids_to_tokens([0, 1]) == [EOS_TOKEN, PAD_TOKEN]
    assert tok.pad_token_id != tok.eos_token_id
    for t in SEED_SPECIAL_TOKENS:
        assert tok(f"a {t} b")["input_ids"].count(tok.convert_tokens_to_ids(t)) == 1
    out = save_tokenizer(tok, tmp_path / "tok")
    loaded = AutoTokenizer.from_pretrained(out)
    assert loaded.is_fast and loaded.model_max_length == 1024
    assert loaded("quick brown fox")["input_ids"] == tok("quick brown fox")["input_ids"]
    assert not list(tmp_path.glob(".tok.tmp-*"))


def test_chat_template_masks_assistant_turns():
    tok = bpe()
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]
    out = tok.apply_chat_template(chat, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    learned = [i for i, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert tok.decode(learned) == "hello there" + EOS_TOKEN  # eos is learned, so the model can stop
    assert learned[-1] == tok.eos_token_id != tok.pad_token_id


def test_bad_settings():
    with pytest.raises(ValueError, match="vocab_size=100 .* byte alphabet"):
        train_bpe_tokenizer(CORPUS, vocab_size=100)
    with pytest.raises(ValueError, match="padding token"):
        train_bpe_tokenizer(CORPUS, vocab_size=300, pad_token=EOS_TOKEN)


def test_bytes_per_token():
    assert bytes_per_token(bpe(), ["The quick brown fox jumps over the lazy dog."]) > 1.5
    with pytest.raises(ValueError, match="empty"):
        bytes_per_token(bpe(), [""])


unicode_text = st.one_of(
    st.text(max_size=200),
    st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), max_size=50),  # CJK
    st.text(st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF), max_size=30),  # emoji
    st.text(st.sampled_from("ae\u0301\u0308\u0327\u20dd\u200d"), max_size=50),  # combining marks, ZWJ
    st.text(st.characters(categories=["Cc"]), max_size=50),  # control characters
    st.text(st.sampled_from(" \t\n\r\u00a0\u3000"), min_size=100, max_size=2000),  # long whitespace runs
    st.just(""),
)


@settings(max_examples=150, deadline=None)
@given(unicode_text)
def test_byte_level_round_trip(s):
    tok = bpe()
    assert tok.decode(tok(s)["input_ids"]) == s


def test_char_level_matches_nanogpt(shared_data, tmp_path):
    text = (shared_data / "tinyshakespeare.txt").read_text(encoding="utf-8")
    tok = build_char_tokenizer(text)
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    assert len(chars) == 65 and len(tok) == 65 + 3  # eos, pad, unk follow the characters
    ids = tok(text)["input_ids"]
    assert ids == [stoi[c] for c in text]
    n = int(0.9 * len(ids))
    assert (n, len(ids) - n) == (1_003_854, 111_540)
    loaded = AutoTokenizer.from_pretrained(save_tokenizer(tok, tmp_path / "char"))
    assert loaded.decode(loaded(text[:500])["input_ids"]) == text[:500]


def test_char_level_stoi_itos():
    tok = build_char_tokenizer("hello world")
    itos = {i: ch for i, ch in enumerate(sorted(set("hello world")))}
    ids = tok("hello" + EOS_TOKEN)["input_ids"]
    assert "".join(itos[i] for i in ids[:-1]) == "hello" and ids[-1] == tok.eos_token_id
    assert tok("hé")["input_ids"][-1] == tok.unk_token_id
    assert tok.decode(tok("low")["input_ids"]) == "low"


def test_tokenizer_for_run_reuses_only_what_matches(tmp_path, caplog, monkeypatch):
    corpus = tmp_path / "c.txt"
    corpus.write_text("".join(f"{t} {i}\n" for i, t in enumerate(CORPUS)))
    script, data = ScriptArguments(dataset_name=str(corpus)), DataArguments(sample_by="paragraph")
    out, args = tmp_path / "run" / "tokenizer", TokenizerArguments(vocab_size=300)
    tokenizer_json = out / "tokenizer.json"

    def run(tok_args=args):
        caplog.clear()
        return tokenizer_for_run(tok_args, script, data, out)

    caplog.set_level(logging.INFO, logger="hfpipe.tokenizer_run")
    first = run()
    assert "no tokenizer there yet" in caplog.text and (out / FINGERPRINT_FILE).is_file()
    trained = tokenizer_json.stat().st_mtime_ns
    with monkeypatch.context() as m:  # a resumed run, or the second rank after the first: nothing to train
        m.setattr(hfpipe.tokenizer_run, "build_tokenizer", lambda *a: pytest.fail("trained again"))
        assert run().get_vocab() == first.get_vocab()
    assert f"reusing the tokenizer in {out} (trained on the same corpus and settings)" in caplog.text
    assert tokenizer_json.stat().st_mtime_ns == trained
    run(TokenizerArguments(vocab_size=290))
    assert (
        "other settings (tokenizer.vocab_size)" in caplog.text
        and len(AutoTokenizer.from_pretrained(out)) <= 290
    )
    corpus.write_text(corpus.read_text() + "a new document\n")
    run()
    assert "trained on another corpus" in caplog.text
    (out / FINGERPRINT_FILE).unlink()  # a leftover from an earlier run, or from before fingerprints
    run()
    assert f"no readable {FINGERPRINT_FILE}" in caplog.text and caplog.records[0].levelname == "WARNING"
    saved = tokenizer_json.read_bytes()
    with pytest.raises(ValueError, match="vocab_size=100"):
        run(TokenizerArguments(vocab_size=100))
    assert tokenizer_json.read_bytes() == saved and not list(out.parent.glob(".tokenizer.tmp-*"))
    run()
    assert "reusing the tokenizer" in caplog.text


def test_build_tokenizer_needs_a_source():
    with pytest.raises(ValueError, match="set tokenizer_name_or_path or dataset_name"):
        hfpipe.tokenizer_run.build_tokenizer(TokenizerArguments(), ScriptArguments(), DataArguments())
