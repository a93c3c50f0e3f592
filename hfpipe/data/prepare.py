"""One path from a text source to training blocks.

load -> clean -> dedup -> seeded train/validation split (:func:`load_clean_split`, shared by tokenizer training
and data preparation) -> tokenize + pack (:func:`pack_corpus`). :func:`build_lm_datasets` is both steps, or
blocks saved earlier by recipes/prepare_data.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
from datasets import (
    Dataset,
    DatasetDict,
    IterableDataset,
    IterableDatasetDict,
    concatenate_datasets,
    load_from_disk,
)

from hfpipe.data.args import DataArguments
from hfpipe.data.cleaning import clean_dataset
from hfpipe.data.packing import FEATURES, pack_dataset
from hfpipe.data.sources import load_text_dataset, resolve_files
from hfpipe.io import save_atomically

logger = logging.getLogger(__name__)

META_FILE = "hfpipe_data.json"
# DataArguments fields that change the cleaned, split corpus (the rest only change how it is packed).
CORPUS_FIELDS = ("text_column", "column_names", "sample_by", "normalize", "min_chars", "max_chars", "dedup",
                 "near_dedup", "near_dedup_threshold", "validation_size", "split_seed")  # fmt: skip


def _validation_mask(texts: list[str], seed: int | None, fraction: float) -> list[bool]:
    key = (seed or 0).to_bytes(8, "little", signed=True)  # a hash split has no file order to keep
    cut = int(fraction * 2**64)
    return [
        int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8, key=key).digest(), "little") < cut
        for t in texts
    ]


def split_dataset(ds, validation_percentage: float, seed: int, num_proc: int | None = None):
    """Seeded train/validation split by content hash: a document (and any copy of it) always lands in the
    same split, whatever the order, the number of processes or streaming. Returns (train, validation)."""
    fraction = validation_percentage / 100
    kw = {} if isinstance(ds, IterableDataset) else {"num_proc": num_proc}
    train = ds.filter(
        lambda b: [not v for v in _validation_mask(b["text"], seed, fraction)], batched=True, **kw
    )
    val = ds.filter(lambda b: _validation_mask(b["text"], seed, fraction), batched=True, **kw)
    return train, val


def split_by_position(ds: Dataset, validation_percentage: float) -> tuple[Dataset, Dataset]:
    """Train = the first (100 - p) % of the corpus' characters, validation = the rest, as nanoGPT splits one
    long text; the document at the cut is cut in two. Returns (train, validation)."""
    ends = np.cumsum(pc.utf8_length(ds.with_format("arrow")[:]["text"]).to_numpy())
    cut = int(ends[-1] * (1 - validation_percentage / 100))
    i = min(int(np.searchsorted(ends, cut, side="right")), len(ds) - 1)  # the document holding position cut
    doc, offset = ds[i]["text"], cut - (int(ends[i - 1]) if i else 0)
    piece = lambda text: Dataset.from_dict({"text": [text] if text else []}, features=ds.features)  # noqa: E731
    train = concatenate_datasets([ds.select(np.arange(i)), piece(doc[:offset])])
    val = concatenate_datasets([piece(doc[offset:]), ds.select(np.arange(i + 1, len(ds)))])
    return train, val


def corpus_fingerprint(script_args, data_args: DataArguments) -> dict:
    """What the cleaned, split corpus depends on (JSON-ready): the source's identity (local files with their
    sizes and modification times, or the Hub id, configuration and split) and the reading, cleaning and
    split settings."""
    source = script_args.dataset_name
    files = resolve_files(str(source)) if source else None
    if files is None:
        identity = {
            "hub": source,
            "config": script_args.dataset_config,
            "split": script_args.dataset_train_split,
        }
    else:
        identity = {"files": [[os.path.abspath(f), *_size_and_mtime(f)] for f in files]}
    fingerprint = {"source": identity, "streaming": script_args.dataset_streaming}
    fingerprint.update({name: getattr(data_args, name) for name in CORPUS_FIELDS})
    return json.loads(json.dumps(fingerprint))  # tuples become lists, as when read back


def _size_and_mtime(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


_last_corpus: tuple[str, tuple] | None = None  # (fingerprint, result) of the last load in this process


def load_clean_split(script_args, data_args: DataArguments) -> tuple[DatasetDict | IterableDatasetDict, list]:
    """Load ``script_args.dataset_name``, clean it and split it into ``train`` and ``validation`` (only
    ``train`` when validation_size is 0). Returns (DatasetDict, cleaning report).

    The split is by document (:func:`split_dataset`); when that leaves a side empty (e.g. one long text file)
    the corpus is split by position instead (:func:`split_by_position`). The last result is kept for this
    process, keyed by :func:`corpus_fingerprint`: the tokenizer step and the packing step of one run share
    one load, and the cleaning report is logged once.
    """
    global _last_corpus
    key = json.dumps(corpus_fingerprint(script_args, data_args), sort_keys=True)
    if _last_corpus is not None and _last_corpus[0] == key:
        corpus, report = _last_corpus[1]
        return type(corpus)(corpus), report
    source, streaming = script_args.dataset_name, script_args.dataset_streaming
    ds = load_text_dataset(source, data_args.text_column, streaming, script_args.dataset_train_split,
                           script_args.dataset_config, data_args.column_names, data_args.sample_by)  # fmt: skip
    ds, report = clean_dataset(ds, data_args, source=source)
    pct = data_args.validation_size * 100
    if pct <= 0:
        splits = {"train": ds}
    else:
        train, val = split_dataset(ds, pct, data_args.split_seed, data_args.preprocessing_num_workers)
        if not streaming and (len(train) == 0 or len(val) == 0):
            logger.warning("%s: too few documents for a document-level split; validation = the last %g%% of "
                           "the text", source, pct)  # fmt: skip
            train, val = split_by_position(ds, pct)
        splits = {"train": train, "validation": val}
    corpus = IterableDatasetDict(splits) if streaming else DatasetDict(splits)
    _last_corpus = (key, (corpus, report))
    return type(corpus)(corpus), report


def resolve_block_size(block_size: int | None, tokenizer, max_context: int | None = None) -> int:
    """``block_size``, or min(1024, context); ValueError when it exceeds the model's context
    (``max_context``, else the tokenizer's ``model_max_length``)."""
    if max_context is None and tokenizer.model_max_length < 1_000_000:  # transformers' "no limit" is ~1e30
        max_context = tokenizer.model_max_length
    if block_size is None:
        return min(1024, max_context or 1024)
    if max_context is not None and block_size > max_context:
        raise ValueError(
            f"block_size={block_size} is larger than the model's context ({max_context} positions); "
            f"set block_size <= {max_context} or build a model with a longer context"
        )
    return block_size


def pack_corpus(
    corpus: DatasetDict | IterableDatasetDict,
    tokenizer,
    data_args: DataArguments,
    max_context: int | None = None,
    source: str = "corpus",
) -> DatasetDict | IterableDatasetDict:
    """Tokenize and pack every split of ``corpus`` into blocks of ``input_ids``/``labels``; the block size is
    resolved here, once (:func:`resolve_block_size`). ValueError when a split packs into no block."""
    block_size = resolve_block_size(data_args.block_size, tokenizer, max_context)
    stride = data_args.stride or block_size
    if stride > block_size:
        logger.warning("stride %d > block_size %d: tokens between blocks are skipped", stride, block_size)
    nproc = data_args.preprocessing_num_workers
    packed = {name: pack_dataset(d, tokenizer, block_size, stride, nproc) for name, d in corpus.items()}
    if isinstance(corpus, IterableDatasetDict):
        return IterableDatasetDict(packed)
    counts = {name: len(d) for name, d in packed.items()}
    if 0 in counts.values():
        raise ValueError(
            f"{source}: the corpus packs into {counts} block(s) of {block_size} tokens, too few for training and "
            "validation; use more text or a smaller block_size"
            + (", or raise validation_size" if counts.get("validation") == 0 else "")
        )
    for name, n in counts.items():
        logger.info("%s: %s blocks of %d tokens (stride %d)", name, f"{n:,}", block_size, stride)
    return DatasetDict(packed)


def save_packed_dataset(
    dsd: DatasetDict | IterableDatasetDict, path: str | os.PathLike, meta: dict | None = None
) -> Path:
    """Write blocks and ``meta`` (plus their block size and counts) into a temp dir beside ``path``, then
    rename: an interrupted run leaves nothing. A streamed ``dsd`` is written to Arrow one batch at a time."""
    dsd = DatasetDict({name: _to_arrow(d) for name, d in dsd.items()})
    if len(dsd["train"]) == 0:
        raise ValueError(f"no training blocks to save to {path}; use more text or a smaller block_size")
    blocks = {name: len(d) for name, d in dsd.items()}
    meta = {"block_size": len(dsd["train"][0]["input_ids"]), "blocks": blocks, **(meta or {})}

    def save(tmp: Path) -> None:
        dsd.save_to_disk(str(tmp))
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))

    out = save_atomically(save, path)
    logger.info("saved %s blocks of %d tokens to %s", blocks, meta["block_size"], out)
    return out


def _to_arrow(ds: Dataset | IterableDataset) -> Dataset:
    if isinstance(ds, Dataset):
        return ds
    return Dataset.from_generator(_rows, features=FEATURES, gen_kwargs={"ds": ds})


def _rows(ds):
    yield from ds


def load_packed_dataset(
    path: str | os.PathLike, block_size: int | None = None, max_context: int | None = None
) -> DatasetDict:
    """Load blocks written by :func:`save_packed_dataset`, checking they fit ``block_size``/``max_context``."""
    p = Path(path)
    if not (p / META_FILE).is_file():
        raise FileNotFoundError(
            f"packed dataset {str(path)!r} not found or incomplete (no {META_FILE}); run recipes/prepare_data.py first"
        )
    meta = json.loads((p / META_FILE).read_text())
    stored = meta.get("block_size")
    if block_size is not None and stored is not None and stored != block_size:
        raise ValueError(
            f"{path} holds blocks of {stored} tokens, not block_size={block_size}; unset block_size or "
            "run recipes/prepare_data.py again with this block_size"
        )
    if max_context is not None and stored is not None and stored > max_context:
        raise ValueError(
            f"{path} holds blocks of {stored} tokens, more than the model's context ({max_context}); "
            "prepare the data again with a smaller block_size"
        )
    return load_from_disk(str(p))


def build_lm_datasets(
    script_args, data_args: DataArguments, tokenizer, max_context: int | None = None
) -> DatasetDict | IterableDatasetDict:
    """Train/validation blocks (``input_ids``, ``labels``) for causal-LM training: loaded from
    ``data_args.packed_dataset_path``, or prepared from ``script_args.dataset_name`` (:func:`load_clean_split`
    then :func:`pack_corpus`). ``max_train_samples``/``max_eval_samples`` cap the splits."""
    if data_args.block_size is not None:
        resolve_block_size(data_args.block_size, tokenizer, max_context)  # fail before any loading
    if data_args.packed_dataset_path:
        dsd = load_packed_dataset(data_args.packed_dataset_path, data_args.block_size, max_context)
    else:
        corpus, _ = load_clean_split(script_args, data_args)
        dsd = pack_corpus(corpus, tokenizer, data_args, max_context, source=script_args.dataset_name)
    for split, n in (("train", data_args.max_train_samples), ("validation", data_args.max_eval_samples)):
        if n is not None and split in dsd:
            d = dsd[split]
            dsd[split] = d.take(n) if isinstance(d, IterableDataset) else d.select(range(min(n, len(d))))
    return dsd
