"""Tokenize documents, put the end-of-text token after each, and pack the stream into blocks.

Like transformers' run_clm ``group_texts`` (and the book's ``GPTDatasetV1`` with its stride), done in one
batched ``map``: each batch of documents is concatenated and cut into windows of ``block_size`` tokens
every ``stride`` tokens; the tail of a batch shorter than a block is dropped, as in run_clm.
"""

from __future__ import annotations

import itertools

import numpy as np
from datasets import Dataset, Features, IterableDataset, List, Value

FEATURES = Features({"input_ids": List(Value("int32")), "labels": List(Value("int32"))})


def pack_ids(ids: np.ndarray, block_size: int, stride: int) -> np.ndarray:
    """Windows ``ids[s : s + block_size]`` for s = 0, stride, 2*stride, ... (shape n_blocks x block_size)."""
    if len(ids) < block_size:
        return np.zeros((0, block_size), dtype=ids.dtype)
    return np.lib.stride_tricks.sliding_window_view(ids, block_size)[::stride]


def tokenize_and_pack(texts: list[str], backend, eos_id: int, block_size: int, stride: int) -> dict:
    """Encode ``texts`` with a ``tokenizers.Tokenizer``, append eos to each and pack into blocks."""
    encodings = backend.encode_batch_fast(texts, add_special_tokens=False)
    total = sum(len(e.ids) for e in encodings) + len(encodings)
    ids = np.fromiter(itertools.chain.from_iterable(e.ids + [eos_id] for e in encodings), np.int32, total)
    blocks = pack_ids(ids, block_size, stride)
    return {"input_ids": blocks, "labels": blocks}


def _pack_batch(batch, backend, eos_id, block_size, stride):
    return tokenize_and_pack(batch["text"], backend, eos_id, block_size, stride)


def pack_dataset(
    ds: Dataset | IterableDataset,
    tokenizer,
    block_size: int,
    stride: int | None = None,
    num_proc: int | None = None,
    batch_size: int = 1000,
) -> Dataset | IterableDataset:
    """Blocks of ``input_ids`` and ``labels`` (= input_ids; the model shifts) from a ``text`` dataset.

    On a file-backed dataset the result is cached by content (datasets' fingerprint): an unchanged
    input and tokenizer reuse the cache file instead of tokenizing again.
    """
    stride = stride or block_size
    if block_size < 1 or stride < 1:
        raise ValueError(f"block_size={block_size} and stride={stride} must be positive")
    if tokenizer.eos_token_id is None:
        raise ValueError(
            f"tokenizer {tokenizer.name_or_path!r} has no eos token; set one to separate documents"
        )
    fn_kwargs = {"backend": tokenizer.backend_tokenizer, "eos_id": tokenizer.eos_token_id,
                 "block_size": block_size, "stride": stride}  # fmt: skip
    kwargs = dict(
        batched=True,
        batch_size=batch_size,
        remove_columns=["text"],
        features=FEATURES,
        fn_kwargs=fn_kwargs,
    )
    if isinstance(ds, IterableDataset):
        return ds.map(_pack_batch, **kwargs)
    return ds.map(
        _pack_batch, num_proc=num_proc, desc=f"tokenize+pack (block {block_size}, stride {stride})", **kwargs
    )
