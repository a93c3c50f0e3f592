import functools
import logging
import os

import numpy as np
import pytest
from datasets import Dataset
from trl import ScriptArguments

from hfpipe.data import (
    DataArguments,
    TokenShardDataset,
    build_lm_datasets,
    load_clean_split,
    load_packed_dataset,
    load_text_dataset,
    pack_dataset,
    pack_ids,
    save_packed_dataset,
    split_by_position,
    tokenize_and_pack,
)
from hfpipe.tokenization import (
    TokenizerArguments,
    build_char_tokenizer,
    load_gpt2_tokenizer,
)
from hfpipe.tokenizer_run import tokenizer_for_run

WORDS = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split()
)


@functools.cache
def char_tok():
    return build_char_tokenizer("abcdefghijklmnopqrstuvwxyz .\n")


def write_corpus(path, n_docs=200):
    rng = np.random.default_rng(0)
    path.write_text("".join(" ".join(rng.choice(WORDS, 30)) + f" {i}.\n" for i in range(n_docs)))
    return path


def test_pack_ids_stride():
    ids = np.arange(10)
    assert pack_ids(ids, 4, 4).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]  # disjoint, tail dropped
    assert pack_ids(ids, 4, 2).tolist() == [
        [0, 1, 2, 3],
        [2, 3, 4, 5],
        [4, 5, 6, 7],
        [6, 7, 8, 9],
    ]  # overlapping
    assert pack_ids(ids, 11, 1).shape == (0, 11)


def test_eos_between_documents_and_gptdatasetv1(shared_data):
    tok = load_gpt2_tokenizer(shared_data / "gpt2-tokenizer")
    out = tokenize_and_pack(["Hello, I am", "a model"], tok.backend_tokenizer, tok.eos_token_id, 3, 1)
    stream = [15496, 11, 314, 716, 50256] + tok("a model")["input_ids"] + [50256]
    assert out["input_ids"].tolist() == [stream[i : i + 3] for i in range(len(stream) - 2)]
    # the book's GPTDatasetV1 on the-verdict: max_length 256, stride 128 -> the same input windows
    text = (shared_data / "the-verdict.txt").read_text(encoding="utf-8")
    ids = tok(text)["input_ids"] + [tok.eos_token_id]
    book = [ids[i : i + 256] for i in range(0, len(ids) - 256, 128)]
    ours = tokenize_and_pack([text], tok.backend_tokenizer, tok.eos_token_id, 256, 128)["input_ids"].tolist()
    assert ours[: len(book)] == book


def test_pack_dataset_cached_and_parallel(tmp_path):
    ds = load_text_dataset(str(write_corpus(tmp_path / "c.txt")), sample_by="line")
    packed = pack_dataset(ds, char_tok(), block_size=64, stride=32)
    assert packed.column_names == ["input_ids", "labels"] and packed[0]["input_ids"] == packed[0]["labels"]
    assert all(len(r) == 64 for r in packed["input_ids"])
    cache = packed.cache_files[0]["filename"]
    mtime = os.path.getmtime(cache)
    again = pack_dataset(load_text_dataset(str(tmp_path / "c.txt"), sample_by="line"), char_tok(), 64, 32)
    assert again.cache_files[0]["filename"] == cache and os.path.getmtime(cache) == mtime  # reused
    parallel = pack_dataset(ds, char_tok(), block_size=64, stride=32, num_proc=2, batch_size=50)
    assert len(parallel) > 0 and len(parallel[0]["input_ids"]) == 64
    stream = pack_dataset(ds.to_iterable_dataset(), char_tok(), block_size=64, stride=32)
    assert [np.asarray(r["input_ids"]).tolist() for r in stream] == list(packed["input_ids"])


def test_build_lm_datasets_and_packed_roundtrip(tmp_path):
    source = ScriptArguments(dataset_name=str(write_corpus(tmp_path / "c.txt")))
    args = DataArguments(sample_by="line", block_size=32, validation_size=0.2, split_seed=3)
    dsd = build_lm_datasets(source, args, char_tok(), max_context=64)
    assert set(dsd) == {"train", "validation"} and len(dsd["train"]) > 3 * len(dsd["validation"]) > 0
    again = build_lm_datasets(source, args, char_tok(), max_context=64)
    assert list(again["validation"]["input_ids"]) == list(dsd["validation"]["input_ids"])  # seeded
    out = save_packed_dataset(dsd, tmp_path / "packed")
    assert not list(tmp_path.glob(".packed.tmp-*"))
    loaded = build_lm_datasets(
        ScriptArguments(), DataArguments(packed_dataset_path=str(out), max_train_samples=5), char_tok(), 64
    )
    assert len(loaded["train"]) == 5 and isinstance(loaded["train"], TokenShardDataset)
    assert loaded["validation"]["input_ids"].tolist() == list(dsd["validation"]["input_ids"])
    assert loaded["train"][4]["labels"].tolist() == dsd["train"][4]["input_ids"]  # derived at load time
    with pytest.raises(
        ValueError, match="block_size=64 is larger than the model's context \\(32 positions\\)"
    ):
        build_lm_datasets(source, DataArguments(block_size=64), char_tok(), max_context=32)
    with pytest.raises(ValueError, match="blocks of 32 tokens, not block_size=16"):
        load_packed_dataset(out, block_size=16)
    with pytest.raises(FileNotFoundError, match="run recipes/prepare_data.py"):
        load_packed_dataset(tmp_path / "nothing")
    with pytest.raises(ValueError, match="validation_size=1.*must be shares"):
        DataArguments(validation_size=1.0)


def test_single_document_splits_by_position(shared_data):
    tok = load_gpt2_tokenizer(shared_data / "gpt2-tokenizer")
    verdict = ScriptArguments(dataset_name=str(shared_data / "the-verdict.txt"))
    corpus, _ = load_clean_split(verdict, DataArguments())
    text = (shared_data / "the-verdict.txt").read_text(encoding="utf-8")
    cut = int(len(text) * 0.9)  # nanoGPT's n = int(0.9 * len(data))
    assert corpus["train"]["text"] == [text[:cut]] and corpus["validation"]["text"] == [text[cut:]]
    dsd = build_lm_datasets(verdict, DataArguments(block_size=128), tok)
    assert (len(dsd["train"]), len(dsd["validation"])) == (36, 4)  # 5,145 tokens, 90/10 by position
    with pytest.raises(ValueError, match="too few for training and validation.*validation_size"):
        build_lm_datasets(verdict, DataArguments(block_size=4000), tok, max_context=8192)


def test_split_by_position_cuts_one_document():
    ds = Dataset.from_dict({"text": ["aaaa", "bbbb", "cccc", "dddd", "eeee"]})
    train, val = split_by_position(ds, 30)  # 20 characters: the first 14 train, the last 6 validation
    assert train["text"] == ["aaaa", "bbbb", "cccc", "dd"] and val["text"] == ["dd", "eeee"]
    train, val = split_by_position(ds, 20)  # a cut between documents splits none
    assert train["text"] == ["aaaa", "bbbb", "cccc", "dddd"] and val["text"] == ["eeee"]


def test_one_load_per_run(tmp_path, caplog):
    path = write_corpus(tmp_path / "c.txt")
    source, args = ScriptArguments(dataset_name=str(path)), DataArguments(sample_by="line", block_size=32)
    with caplog.at_level(logging.INFO, logger="hfpipe"):  # a pretraining run: tokenizer step, then packing
        tok = tokenizer_for_run(TokenizerArguments(char_level=True), source, args, tmp_path / "tokenizer")
        build_lm_datasets(source, args, tok)
    assert caplog.text.count("cleaning report") == 1 and "training a new tokenizer" in caplog.text
    corpus, report = load_clean_split(source, args)
    assert load_clean_split(source, args)[0]["train"] is corpus["train"]
    other = DataArguments(sample_by="line", block_size=32, split_seed=7)  # other settings: split again
    assert load_clean_split(source, other)[0]["validation"]["text"] != corpus["validation"]["text"]
    path.write_text(path.read_text() + "one more document at the end.\n")
    assert load_clean_split(source, args)[1][0].docs_left == report[0].docs_left + 1  # the file changed


def test_streaming_build(tmp_path):
    source = ScriptArguments(dataset_name=str(write_corpus(tmp_path / "c.txt")), dataset_streaming=True)
    dsd = build_lm_datasets(
        source, DataArguments(sample_by="line", block_size=32, max_train_samples=4), char_tok()
    )
    rows = list(dsd["train"])
    assert len(rows) == 4 and len(rows[0]["input_ids"]) == 32


def test_in_memory_dataset_packs():
    ds = Dataset.from_dict({"text": ["abc", "de"]})
    out = pack_dataset(ds, char_tok(), block_size=2)
    tok = char_tok()
    ids = tok("abc")["input_ids"] + [tok.eos_token_id] + tok("de")["input_ids"] + [tok.eos_token_id]
    assert list(out["input_ids"]) == [ids[0:2], ids[2:4], ids[4:6]]
