"""Compact token shards: packed blocks as raw ``uint16``/``uint32`` files plus a JSON index, read by memory map.

    index = write_token_shards(documents, tokenizer, "out/packed/train", block_size=1024)
    train = TokenShardDataset("out/packed/train")  # map-style torch Dataset: len(train), train[i]

nanoGPT's and llm.c's layout: 2 bytes per token when the vocabulary fits ``uint16``, 4 otherwise. Labels are
the inputs (the model shifts them), so they are derived at load time, not stored. ``index.json`` lists every
shard's blocks, bytes and xxh3-64 checksum (~10 GB/s, so checking is nearly free next to reading); every file
is written under a temp name and renamed, the index last: a killed run leaves no index, and a truncated or
damaged shard fails at load with one line naming it.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import operator
import os
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import torch
import xxhash
from datasets import Dataset, Features, LargeList, Value

from hfpipe.data.workers import TOKENIZE_BYTES_PER_PROC, in_forked_worker, resolve_num_proc
from hfpipe.io import write_json_atomically

logger = logging.getLogger(__name__)

FORMAT = "hfpipe-token-shards"
VERSION = 1
INDEX = "index.json"
CHECKSUM = "xxh3_64"
SHARD_TOKENS = 100_000_000  # tokens per shard file (200 MB of uint16), as llm.c's FineWeb shards
REPREPARE = "prepare the data again with recipes/prepare_data.py"


def shard_dtype(vocab_size: int) -> np.dtype:
    """Little-endian ``uint16`` when every id fits (``vocab_size`` <= 65536), else ``uint32`` (logged)."""
    if vocab_size <= 1 << 16:
        return np.dtype("<u2")
    logger.warning("vocabulary of %d tokens does not fit uint16: writing uint32", vocab_size)
    return np.dtype("<u4")


class ShardWriter:
    """Cut a stream of token ids into blocks (one every ``stride`` tokens) and write them to ``out_dir`` as
    shards of ``shard_tokens`` tokens (whole blocks; the last shard is shorter). ``finish`` writes the index."""

    def __init__(
        self, out_dir, dtype, block_size: int, stride: int | None = None, shard_tokens: int = SHARD_TOKENS
    ):
        self.out_dir, self.dtype = Path(out_dir), np.dtype(dtype)
        self.block_size, self.stride = block_size, stride or block_size
        if block_size < 1 or self.stride < 1:
            raise ValueError(f"block_size={block_size} and stride={stride} must be positive")
        self.shard_blocks = max(1, shard_tokens // block_size)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if (self.out_dir / INDEX).exists() or any(self.out_dir.glob("shard-*.bin")):
            raise ValueError(f"{self.out_dir} already holds token shards; write into a new directory")
        self.shards: list[dict] = []
        self.tokens_in = 0
        self._pending = np.empty(0, self.dtype)  # tokens not yet in a block (the overlap, with a stride)
        self._skip = 0  # tokens still to skip before the next block (stride > block_size)
        self._file = self._tmp = self._hash = None
        self._in_shard = 0

    def add(self, ids: np.ndarray) -> None:
        """Append ``ids`` to the stream; every block it completes is written."""
        self.tokens_in += len(ids)
        ids = np.asarray(ids)
        if (
            ids.dtype != self.dtype
            and len(ids)
            and not 0 <= ids.min() <= ids.max() <= np.iinfo(self.dtype).max
        ):
            raise ValueError(f"token ids {ids.min()}..{ids.max()} do not fit {self.dtype.name}")
        ids = ids.astype(self.dtype, copy=False)
        skip = min(self._skip, len(ids))
        ids, self._skip = ids[skip:], self._skip - skip
        stream = np.concatenate([self._pending, ids]) if len(self._pending) else ids
        bs, stride = self.block_size, self.stride
        n = 0 if len(stream) < bs else (len(stream) - bs) // stride + 1
        if n:
            if stride == bs:
                blocks = stream[: n * bs].reshape(n, bs)
            else:
                blocks = np.lib.stride_tricks.sliding_window_view(stream, bs)[::stride][:n]
            self._write(blocks)
        self._skip += max(0, n * stride - len(stream))
        self._pending = stream[n * stride :].copy()  # a copy: the batch's array can be freed

    def _write(self, blocks: np.ndarray) -> None:
        while len(blocks):
            if self._file is None:
                name = f"shard-{len(self.shards):05d}.bin"
                self._tmp = self.out_dir / f".{name}.tmp"
                self._file, self._hash, self._in_shard = open(self._tmp, "wb"), xxhash.xxh3_64(), 0
            k = min(len(blocks), self.shard_blocks - self._in_shard)
            data = memoryview(np.ascontiguousarray(blocks[:k])).cast("B")
            self._file.write(data)
            self._hash.update(data)
            self._in_shard += k
            blocks = blocks[k:]
            if self._in_shard == self.shard_blocks:
                self._close_shard()

    def _close_shard(self) -> None:
        self._file.close()
        name = self._tmp.name[1 : -len(".tmp")]
        os.replace(self._tmp, self.out_dir / name)
        tokens = self._in_shard * self.block_size
        self.shards.append({"file": name, "blocks": self._in_shard, "tokens": tokens,
                            "bytes": tokens * self.dtype.itemsize, CHECKSUM: self._hash.hexdigest()})  # fmt: skip
        self._file = None

    def finish(self, extra: dict | None = None) -> dict:
        """Close the last shard and write ``index.json`` (with ``extra`` fields); returns the index."""
        if self._file is not None:
            self._close_shard()
        blocks = sum(s["blocks"] for s in self.shards)
        index = {"format": FORMAT, "version": VERSION, "dtype": self.dtype.name, "block_size": self.block_size,
                 "stride": self.stride, **(extra or {}), "tokens": self.tokens_in, "blocks": blocks,
                 "checksum": CHECKSUM, "shards": self.shards}  # fmt: skip
        write_json_atomically(index, self.out_dir / INDEX)
        return index

    def abort(self) -> None:
        """Close and remove a shard being written (the finished ones stay, without an index)."""
        if self._file is not None:
            self._file.close()
            self._tmp.unlink(missing_ok=True)
            self._file = None


def _encode(batch: dict, backend, eos_id: int, dtype: str, column: str) -> dict:
    """One batch of documents -> one row: their ids, each followed by eos, as one array."""
    if in_forked_worker():  # one process per core: the Rust encoder's own threads would oversubscribe
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    if column == "text":
        docs = [e.ids for e in backend.encode_batch_fast(batch["text"], add_special_tokens=False)]
    else:
        docs = [list(d) for d in batch[column]]
    total = sum(map(len, docs)) + len(docs)
    ids = np.fromiter(itertools.chain.from_iterable(d + [eos_id] for d in docs), np.int64, total)
    if ids.min(initial=0) < 0:
        raise ValueError(f"{column} holds a negative token id ({ids.min()})")
    return {"ids": [ids.astype(dtype)], "documents": [len(docs)], "max_id": [int(ids.max(initial=0))]}


def _token_batches(ds, tokenizer, column: str, dtype: np.dtype, num_proc: int | None, batch_size: int):
    """Yield ``(ids, documents, max_id)`` per batch of documents: datasets ``map(num_proc)`` over a Dataset
    (cached by content), batch by batch over a stream."""
    kwargs = {"backend": tokenizer.backend_tokenizer, "eos_id": tokenizer.eos_token_id, "dtype": dtype.name,
              "column": column}  # fmt: skip
    if not isinstance(ds, Dataset):
        for batch in ds.iter(batch_size=batch_size):
            row = _encode(batch, **kwargs)
            yield row["ids"][0], row["documents"][0], row["max_id"][0]
        return
    features = Features(
        {"ids": LargeList(Value(dtype.name)), "documents": Value("int64"), "max_id": Value("int64")}
    )
    tokens = ds.map(_encode, batched=True, batch_size=batch_size, remove_columns=ds.column_names,
                    features=features, fn_kwargs=kwargs, desc="tokenize",
                    num_proc=resolve_num_proc(num_proc, ds, TOKENIZE_BYTES_PER_PROC))  # fmt: skip
    for table in tokens.with_format("arrow").iter(batch_size=4):
        ids = pc.list_flatten(table["ids"]).to_numpy()
        yield ids, pc.sum(table["documents"]).as_py(), pc.max(table["max_id"]).as_py()


def write_token_shards(
    ds,
    tokenizer,
    out_dir: str | os.PathLike,
    block_size: int,
    stride: int | None = None,
    num_proc: int | None = None,
    shard_tokens: int = SHARD_TOKENS,
    batch_size: int = 1000,
    allow_empty: bool = False,
) -> dict:
    """Tokenize the documents of ``ds`` (a ``text`` column, or token ids in ``input_ids``), put eos after each,
    concatenate them in order and write blocks of ``block_size`` tokens, one every ``stride`` (default: disjoint),
    to shards in ``out_dir``. Returns the index (also ``out_dir/index.json``).

    ``num_proc`` processes tokenize (None: the cores available, fewer for a small corpus); only the final
    partial block is dropped, so the blocks do not depend on ``num_proc`` or ``batch_size``. ValueError when
    no block comes out (unless ``allow_empty``).
    """
    if tokenizer.eos_token_id is None:
        raise ValueError(
            f"tokenizer {tokenizer.name_or_path!r} has no eos token; set one to separate documents"
        )
    columns = ds.column_names or ["text"]  # a stream's columns can be unknown until read
    column = next((c for c in ("text", "input_ids") if c in columns), None)
    if column is None:
        raise ValueError(f"documents need a 'text' or an 'input_ids' column; these have {columns}")
    vocab = max(len(tokenizer), tokenizer.backend_tokenizer.get_vocab_size(with_added_tokens=True))
    dtype = shard_dtype(vocab)
    start = time.perf_counter()
    writer = ShardWriter(out_dir, dtype, block_size, stride, shard_tokens)
    documents = 0
    try:
        for ids, docs, max_id in _token_batches(ds, tokenizer, column, dtype, num_proc, batch_size):
            if max_id >= vocab:
                raise ValueError(f"{column} holds token id {max_id}, outside the tokenizer's {vocab} ids")
            writer.add(ids)
            documents += docs
    except BaseException:
        writer.abort()
        raise
    seconds = time.perf_counter() - start
    index = writer.finish({"vocab_size": vocab, "eos_token_id": tokenizer.eos_token_id,
                           "documents": documents, "seconds": round(seconds, 3)})  # fmt: skip
    if index["blocks"] == 0 and not allow_empty:
        raise ValueError(
            f"{out_dir}: {documents:,} documents ({writer.tokens_in:,} tokens) pack into no block of {block_size} "
            "tokens; use more text or a smaller block_size"
        )
    logger.debug("%s: %s blocks of %d tokens (%s, %d shard(s)); %s documents, %s tokens in %.1f s (%s tokens/s)",
                 out_dir, f"{index['blocks']:,}", block_size, dtype.name, len(index["shards"]), f"{documents:,}",
                 f"{writer.tokens_in:,}", seconds, f"{writer.tokens_in / max(seconds, 1e-9):,.0f}")  # fmt: skip
    return index


def read_index(path: str | os.PathLike) -> dict:
    """The index of the shards in ``path``; FileNotFoundError/ValueError naming it when missing or not one."""
    file = Path(path) / INDEX
    if not file.is_file():
        raise FileNotFoundError(f"{path}: no {INDEX}, so no complete token shards; {REPREPARE}")
    try:
        index = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{file} is not valid JSON ({err}); {REPREPARE}") from None
    if index.get("format") != FORMAT or index.get("version") != VERSION:
        raise ValueError(f"{file} is not a version-{VERSION} {FORMAT} index; {REPREPARE}")
    return index


def file_checksum(path: str | os.PathLike, chunk_size: int = 16 << 20) -> str:
    """The xxh3-64 digest (hex) of a file, read in chunks."""
    h = xxhash.xxh3_64()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def check_shards(path: str | os.PathLike, index: dict, verify_checksums: bool = True) -> None:
    """Every shard of ``index`` exists with its size (always) and its checksum (``verify_checksums``);
    otherwise one line naming the shard: FileNotFoundError (missing) or ValueError (truncated, corrupted)."""
    itemsize = np.dtype(index["dtype"]).itemsize
    for s in index["shards"]:
        file = Path(path) / s["file"]
        if not file.is_file():
            raise FileNotFoundError(f"token shard {file} is missing (listed in its {INDEX}); {REPREPARE}")
        size = file.stat().st_size
        if size != s["bytes"] or s["bytes"] != s["blocks"] * index["block_size"] * itemsize:
            raise ValueError(
                f"token shard {file} has {size:,} bytes, its index says {s['bytes']:,}: the file is truncated or "
                f"was overwritten; {REPREPARE}"
            )
    if verify_checksums:
        for s in index["shards"]:
            file = Path(path) / s["file"]
            if (digest := file_checksum(file)) != s[CHECKSUM]:
                raise ValueError(
                    f"token shard {file} is corrupted: its {CHECKSUM} checksum is {digest}, its index says "
                    f"{s[CHECKSUM]}; {REPREPARE}"
                )


class TokenShardDataset(torch.utils.data.Dataset):
    """The blocks of one split, read by memory map (never loaded whole): ``ds[i]`` is
    ``{"input_ids", "labels"}``, both the block as int64 tensors (the model shifts the labels).

    A map-style dataset, so ``Trainer``'s seeded sampler gives exact resume and each DDP rank its own
    batches. Sizes are checked at construction, and checksums unless ``verify_checksums=False``.
    """

    def __init__(self, path: str | os.PathLike, verify_checksums: bool = True):
        self.path = Path(path)
        self.index = read_index(self.path)
        check_shards(self.path, self.index, verify_checksums)
        self.block_size = self.index["block_size"]
        self.dtype = np.dtype(self.index["dtype"]).newbyteorder("<")
        self._ends = np.cumsum([s["blocks"] for s in self.index["shards"]], dtype=np.int64)
        self._len = int(self._ends[-1]) if len(self._ends) else 0
        self._maps = None  # opened on first access, in each process (DataLoader workers included)

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"TokenShardDataset({str(self.path)!r}, {self._len:,} blocks of {self.block_size} tokens, {self.dtype.name})"

    def _shards(self) -> list[np.memmap]:
        if self._maps is None:
            self._maps = [np.memmap(self.path / s["file"], self.dtype, "r", shape=(s["blocks"], self.block_size))
                          for s in self.index["shards"]]  # fmt: skip
        return self._maps

    def block(self, i: int) -> np.ndarray:
        """Block ``i`` as stored (a read-only view of the memory map)."""
        i = operator.index(i)
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError(f"block {i} out of range for {self._len} blocks")
        s = int(np.searchsorted(self._ends, i, side="right"))
        return self._shards()[s][i - (int(self._ends[s - 1]) if s else 0)]

    def __getitem__(self, i):
        if isinstance(i, str):  # a column, as datasets.Dataset gives it: every block (a copy: small splits)
            if i not in ("input_ids", "labels"):
                raise KeyError(f"{i!r}: token shards have the columns 'input_ids' and 'labels'")
            return self.tokens().astype(np.int64).reshape(-1, self.block_size)
        block = torch.from_numpy(self.block(i).astype(np.int64))
        return {"input_ids": block, "labels": block}

    def __getitems__(self, indices: list[int]) -> list[dict]:
        return [self[i] for i in indices]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_maps": None}  # a pickled dataset (DataLoader workers) maps its own

    def take(self, n: int) -> TokenShardDataset:
        """The first ``n`` blocks (a view over the same shards)."""
        view = copy.copy(self)
        view._len = min(max(n, 0), self._len)
        return view

    def tokens(self) -> np.ndarray:
        """Every block of the split, in order, as one flat array of stored ids (a copy)."""
        return np.concatenate([m.reshape(-1) for m in self._shards()])[: self._len * self.block_size]
