"""Token shards: round trip, uint16/uint32, damaged shards, a killed writer, the earlier format, memory."""

import functools
import json
import logging
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset, DatasetDict, IterableDataset
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast
from trl import ScriptArguments

from hfpipe.data import (
    DataArguments,
    ShardWriter,
    TokenShardDataset,
    build_lm_datasets,
    load_packed_dataset,
    pack_ids,
    save_token_shards,
    write_token_shards,
)
from hfpipe.pretraining import collate_blocks
from hfpipe.tokenization import build_char_tokenizer

DOCS = ["hello world", "abc", "", "the quick brown fox jumps over the lazy dog", "zz top."] * 40


@functools.cache
def char_tok():
    return build_char_tokenizer("abcdefghijklmnopqrstuvwxyz .\n")


def stream_of(docs, tok):
    return np.array([i for d in docs for i in tok(d)["input_ids"] + [tok.eos_token_id]])


@pytest.mark.parametrize(
    ("block_size", "stride", "num_proc", "batch_size"),
    [(16, None, None, 7), (16, 5, 2, 3), (8, 11, None, 1000)],  # disjoint, overlapping, gaps
)
def test_round_trip_is_the_packed_stream(tmp_path, block_size, stride, num_proc, batch_size):
    tok = char_tok()
    index = write_token_shards(Dataset.from_dict({"text": DOCS}), tok, tmp_path / "s", block_size, stride,
                               num_proc=num_proc, shard_tokens=100, batch_size=batch_size)  # fmt: skip
    ds = TokenShardDataset(tmp_path / "s")
    want = pack_ids(
        stream_of(DOCS, tok), block_size, stride or block_size
    )  # one stream: no per-batch tail lost
    assert len(ds) == len(want) == index["blocks"] and index["documents"] == len(DOCS)
    assert np.array_equal(np.stack([ds[i]["input_ids"].numpy() for i in range(len(ds))]), want)
    assert ds[-1]["labels"].dtype == torch.int64 and torch.equal(ds[-1]["labels"], ds[-1]["input_ids"])
    per_shard = 100 // block_size  # fixed-size shards of whole blocks; only the last is shorter
    assert [s["blocks"] for s in index["shards"]][:-1] == [per_shard] * (len(index["shards"]) - 1)
    files = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert files == sorted([s["file"] for s in index["shards"]] + ["index.json"])  # no temp file left
    for s in index["shards"]:
        assert (tmp_path / "s" / s["file"]).stat().st_size == s["blocks"] * block_size * 2 == s["bytes"]
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_same_blocks_from_ids_streams_and_any_num_proc(tmp_path):
    tok = char_tok()
    text = Dataset.from_dict({"text": DOCS})
    write_token_shards(text, tok, tmp_path / "a", 16, num_proc=2, batch_size=3)
    ids = Dataset.from_dict({"input_ids": [tok(d)["input_ids"] for d in DOCS]})
    write_token_shards(ids, tok, tmp_path / "b", 16, batch_size=1000)
    write_token_shards(text.to_iterable_dataset(), tok, tmp_path / "c", 16)
    shards = [(tmp_path / d / "shard-00000.bin").read_bytes() for d in "abc"]
    assert shards[0] == shards[1] == shards[2]
    with pytest.raises(ValueError, match="already holds token shards"):
        write_token_shards(text, tok, tmp_path / "a", 16)
    with pytest.raises(ValueError, match="pack into no block of 4096 tokens"):
        write_token_shards(text, tok, tmp_path / "d", 4096)
    with pytest.raises(ValueError, match=r"'text' or an 'input_ids' column; these have \['body'\]"):
        write_token_shards(Dataset.from_dict({"body": ["x"]}), tok, tmp_path / "e", 16)


def test_vocabulary_past_uint16_writes_uint32(tmp_path, caplog):
    vocab = {f"w{i}": i for i in range(70_000)} | {"<eos>": 70_000}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<eos>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>")
    docs = ["w1 w65535 w65536 w69999", "w3 w4"] * 10
    with caplog.at_level(logging.WARNING, logger="hfpipe"):
        index = write_token_shards(Dataset.from_dict({"text": docs}), tok, tmp_path / "s", 6)
    assert "vocabulary of 70001 tokens does not fit uint16: writing uint32" in caplog.text
    ds = TokenShardDataset(tmp_path / "s")
    assert index["dtype"] == "uint32" and ds.dtype == np.uint32
    assert ds[0]["input_ids"].tolist() == [1, 65535, 65536, 69999, 70000, 3]
    assert index["shards"][0]["bytes"] == index["blocks"] * 6 * 4
    with pytest.raises(ValueError, match="token ids 70000..70000 do not fit uint16"):  # ids past the dtype
        ShardWriter(tmp_path / "w", np.uint16, 4).add(np.array([70_000]))


def shard_set(tmp_path, shard_tokens=64):
    write_token_shards(
        Dataset.from_dict({"text": DOCS}), char_tok(), tmp_path / "s", 16, shard_tokens=shard_tokens
    )
    return tmp_path / "s"


def test_truncated_and_corrupted_shards_fail_naming_them(tmp_path):
    path = shard_set(tmp_path)
    shard = path / "shard-00002.bin"
    data = shard.read_bytes()
    shard.write_bytes(data[:-3])
    with pytest.raises(ValueError, match=r"^token shard .*shard-00002.bin has 125 bytes, its index says 128: the "
                       r"file is truncated") as err:  # fmt: skip
        TokenShardDataset(path)
    assert "\n" not in str(err.value)
    shard.write_bytes(data[:1] + bytes([data[1] ^ 1]) + data[2:])  # one flipped bit, same size
    with pytest.raises(
        ValueError, match=r"^token shard .*shard-00002.bin is corrupted: its xxh3_64 checksum"
    ):
        TokenShardDataset(path)
    assert len(TokenShardDataset(path, verify_checksums=False)) > 0  # sizes only: the caller's choice
    shard.unlink()
    with pytest.raises(FileNotFoundError, match="shard-00002.bin is missing"):
        TokenShardDataset(path, verify_checksums=False)
    with pytest.raises(FileNotFoundError, match="no index.json.*recipes/prepare_data.py"):
        TokenShardDataset(tmp_path)


def test_an_interrupted_write_leaves_no_index(tmp_path):
    def docs():
        yield from ({"text": d} for d in DOCS[:100])
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_token_shards(
            IterableDataset.from_generator(docs),
            char_tok(),
            tmp_path / "s",
            16,
            shard_tokens=64,
            batch_size=10,
        )
    assert len(list((tmp_path / "s").glob("shard-*.bin"))) > 1 and not list((tmp_path / "s").glob(".*"))
    with pytest.raises(FileNotFoundError, match="no index.json"):
        TokenShardDataset(tmp_path / "s")


def test_a_killed_writer_leaves_no_index(tmp_path):
    read, write = os.pipe()
    pid = os.fork()  # a real SIGKILL mid-write, without starting a new interpreter
    if pid == 0:
        try:
            writer = ShardWriter(tmp_path / "s", np.uint16, 16, shard_tokens=64)
            for _ in range(10):
                writer.add(np.arange(40, dtype=np.uint16))
            writer._file.flush()
            os.write(write, b"x")
            time.sleep(60)
            writer.finish()
        finally:
            os._exit(1)
    assert os.read(read, 1) == b"x"
    os.kill(pid, signal.SIGKILL)  # mid-shard: shard-00006 is half written under its temp name
    os.waitpid(pid, 0)
    assert (tmp_path / "s" / ".shard-00006.bin.tmp").stat().st_size > 0
    assert len(list((tmp_path / "s").glob("shard-*.bin"))) == 6
    with pytest.raises(FileNotFoundError, match=r"s: no index.json, so no complete token shards"):
        TokenShardDataset(tmp_path / "s")


def test_save_token_shards_and_build_lm_datasets(tmp_path):
    tok = char_tok()
    corpus = DatasetDict(
        {"train": Dataset.from_dict({"text": DOCS}), "validation": Dataset.from_dict({"text": DOCS[:20]})}
    )
    args = DataArguments(block_size=16, shard_tokens=64)
    out = save_token_shards(corpus, tok, tmp_path / "packed", args, meta={"note": 1}, source="docs")
    meta = json.loads((out / "hfpipe_data.json").read_text())
    n_val = len(pack_ids(stream_of(DOCS[:20], tok), 16, 16))
    assert meta["note"] == 1 and meta["blocks"] == {
        "train": len(TokenShardDataset(out / "train")),
        "validation": n_val,
    }
    assert [s["name"] for s in meta["cleaning"]] == ["tokenize+pack train", "tokenize+pack validation"]
    assert meta["cleaning"][0]["tokens_per_s"] > 0 and not list(tmp_path.glob(".packed*"))
    dsd = build_lm_datasets(
        ScriptArguments(), DataArguments(packed_dataset_path=str(out), max_train_samples=3), tok
    )
    assert len(dsd["train"]) == 3 and len(dsd["validation"]) == n_val
    assert dsd["validation"]["input_ids"].shape == (n_val, 16)
    with pytest.raises(ValueError, match="blocks of 16 tokens, more than the model's context"):
        build_lm_datasets(ScriptArguments(), DataArguments(packed_dataset_path=str(out)), tok, max_context=8)
    with pytest.raises(
        ValueError, match=r"docs: the corpus packs into \{'train': \d+, 'validation': 0\}.*validation_size"
    ):
        small = DatasetDict({"train": corpus["train"], "validation": Dataset.from_dict({"text": ["a"]})})
        save_token_shards(small, tok, tmp_path / "other", args, source="docs")
    assert not (tmp_path / "other").exists() and not list(tmp_path.glob(".other*"))


def test_earlier_format_still_loads_with_a_warning(tmp_path, caplog):
    blocks = np.arange(64).reshape(4, 16).tolist()
    legacy = DatasetDict({"train": Dataset.from_dict({"input_ids": blocks, "labels": blocks})})
    legacy.save_to_disk(str(tmp_path / "old"))
    (tmp_path / "old" / "hfpipe_data.json").write_text(json.dumps({"block_size": 16, "blocks": {"train": 4}}))
    with caplog.at_level(logging.WARNING, logger="hfpipe"):
        dsd = load_packed_dataset(tmp_path / "old")
    assert "earlier format" in caplog.text and "run recipes/prepare_data.py again" in caplog.text
    assert isinstance(dsd, DatasetDict) and dsd["train"][1]["input_ids"] == list(range(16, 32))


def rss_anon() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("RssAnon:"))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RssAnon from /proc (Linux)")
def test_reading_maps_the_shards_instead_of_loading_them(tmp_path):
    writer = ShardWriter(tmp_path / "s", np.uint16, 512, shard_tokens=8 << 20)
    for _ in range(4):  # 32 M tokens = 64 MB in 4 shards
        writer.add(np.random.default_rng(0).integers(0, 50_000, 8 << 20, dtype=np.uint16))
    writer.finish()
    before = rss_anon()
    ds = TokenShardDataset(tmp_path / "s")
    loader = torch.utils.data.DataLoader(ds, batch_size=256, shuffle=True, collate_fn=collate_blocks)
    seen = sum(batch["input_ids"].numel() for batch in loader)
    assert seen == 32 << 20
    grown = rss_anon() - before
    assert grown < 16 << 20, f"reading 64 MB of shards grew anonymous memory by {grown / 2**20:.0f} MB"
