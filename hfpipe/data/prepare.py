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
import time
from dataclasses import asdict, replace
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
from hfpipe.data.cleaning import CleaningStep, clean_dataset, format_report, step_rates
from hfpipe.data.packing import FEATURES, pack_dataset
from hfpipe.data.shards import (
    FORMAT,
    VERSION,
    ShardWriter,
    TokenShardDataset,
    shard_dtype,
    write_token_shards,
)
from hfpipe.data.sources import corpus_fingerprint, load_text_dataset
from hfpipe.data.workers import TOKENIZE_BYTES_PER_PROC, resolve_num_proc
from hfpipe.io import save_atomically, write_json_atomically

logger = logging.getLogger(__name__)

META_FILE = "hfpipe_data.json"


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
    if data_args.engine == "datatrove":  # the same cleaning as datatrove pipelines; a Dataset on disk
        from hfpipe.data.datatrove_engine import clean_with_datatrove

        (ds, report), streaming = clean_with_datatrove(script_args, data_args), False
    else:
        start = time.perf_counter()
        ds = load_text_dataset(source, data_args.text_column, streaming, script_args.dataset_train_split,
                               script_args.dataset_config, data_args.column_names, data_args.sample_by)  # fmt: skip
        loaded = time.perf_counter() - start
        ds, report = clean_dataset(ds, data_args, source=source)
        if not streaming:  # the "input" row: loading, i.e. reading the files into Arrow
            report[0] = replace(report[0], **step_rates(loaded, report[0].docs_left, report[0].chars_left))
    pct = data_args.validation_size * 100
    if pct <= 0:
        splits = {"train": ds}
    else:
        start = time.perf_counter()
        num_proc = resolve_num_proc(data_args.preprocessing_num_workers, ds)
        train, val = split_dataset(ds, pct, data_args.split_seed, num_proc)
        if not streaming and (len(train) == 0 or len(val) == 0):
            logger.warning("%s: too few documents for a document-level split; validation = the last %g%% of "
                           "the text", source, pct)  # fmt: skip
            train, val = split_by_position(ds, pct)
        splits = {"train": train, "validation": val}
        if not streaming:
            docs, chars = len(train) + len(val), report[-1].chars_left
            rates = step_rates(time.perf_counter() - start, len(ds), chars)
            report = [*report, CleaningStep("split", 0, 0, docs, chars, **rates)]
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
    """Tokenize and pack every split of ``corpus`` into Arrow blocks of ``input_ids``/``labels`` (a training
    run preparing its own data: datasets caches them); the block size is resolved here, once
    (:func:`resolve_block_size`). ValueError when a split packs into no block."""
    block_size, stride = _block_and_stride(data_args, tokenizer, max_context)
    nproc = data_args.preprocessing_num_workers
    packed = {name: pack_dataset(d, tokenizer, block_size, stride, resolve_num_proc(nproc, d, TOKENIZE_BYTES_PER_PROC))
              for name, d in corpus.items()}  # fmt: skip
    if isinstance(corpus, IterableDatasetDict):
        return IterableDatasetDict(packed)
    counts = {name: len(d) for name, d in packed.items()}
    _check_counts(counts, block_size, source)
    for name, n in counts.items():
        logger.info("%s: %s blocks of %d tokens (stride %d)", name, f"{n:,}", block_size, stride)
    return DatasetDict(packed)


def _block_and_stride(data_args: DataArguments, tokenizer, max_context: int | None) -> tuple[int, int]:
    block_size = resolve_block_size(data_args.block_size, tokenizer, max_context)
    stride = data_args.stride or block_size
    if stride > block_size:
        logger.warning("stride %d > block_size %d: tokens between blocks are skipped", stride, block_size)
    return block_size, stride


def _check_counts(counts: dict, block_size: int, source: str) -> None:
    if 0 in counts.values():
        raise ValueError(
            f"{source}: the corpus packs into {counts} block(s) of {block_size} tokens, too few for training and "
            "validation; use more text or a smaller block_size"
            + (", or raise validation_size" if counts.get("validation") == 0 else "")
        )


def save_token_shards(
    corpus: DatasetDict | IterableDatasetDict,
    tokenizer,
    output_dir: str | os.PathLike,
    data_args: DataArguments,
    meta: dict | None = None,
    max_context: int | None = None,
    source: str = "corpus",
    report: list[CleaningStep] | None = None,
) -> Path:
    """Tokenize and pack every split of ``corpus`` (documents in ``text``) into token shards in
    ``output_dir/<split>`` (:func:`~hfpipe.data.shards.write_token_shards`), plus ``hfpipe_data.json``: ``meta``,
    the block size, blocks and tokens per split, and under ``cleaning`` the ``report`` with one timing row per
    split appended (also logged). Written into a temp dir beside ``output_dir``, then renamed: an interrupted
    run leaves nothing. ValueError, naming ``source``, when a split packs into no block."""
    block_size, stride = _block_and_stride(data_args, tokenizer, max_context)
    steps = list(report or [])
    info = {}

    def save(tmp: Path) -> None:
        indexes = {}
        for name, ds in corpus.items():
            indexes[name] = index = write_token_shards(
                ds, tokenizer, tmp / name, block_size, stride, data_args.preprocessing_num_workers,
                data_args.shard_tokens, allow_empty=True,
            )  # fmt: skip
            rates = step_rates(index["seconds"], index["documents"], tokens=index["tokens"])
            steps.append(CleaningStep(f"tokenize+pack {name}", 0, 0, index["documents"], None, **rates))
        _check_counts({name: i["blocks"] for name, i in indexes.items()}, block_size, source)
        info.update(_shards_meta(indexes, meta, steps))
        write_json_atomically(info, tmp / META_FILE)

    out = save_atomically(save, output_dir)
    logger.info("saved token shards (%s, %s blocks of %d tokens) to %s; preparation report:\n%s", info["dtype"],
                info["blocks"], block_size, out, format_report(steps))  # fmt: skip
    return out


def _shards_meta(indexes: dict, meta: dict | None, steps: list | None = None) -> dict:
    first = next(iter(indexes.values()))
    info = {**(meta or {}), "format": FORMAT, "version": VERSION, "dtype": first["dtype"],
            "block_size": first["block_size"], "stride": first["stride"],
            "blocks": {name: i["blocks"] for name, i in indexes.items()},
            "tokens": {name: i["tokens"] for name, i in indexes.items()}}  # fmt: skip
    if steps is not None:
        info["cleaning"] = [asdict(s) for s in steps]
    return info


def save_packed_dataset(
    dsd: DatasetDict | IterableDatasetDict, path: str | os.PathLike, meta: dict | None = None
) -> Path:
    """Write packed blocks (``input_ids`` of equal length; ``labels``, if any, must equal them) and ``meta`` as
    token shards, into a temp dir beside ``path``, then renamed. The dtype is the smallest that holds
    ``meta["vocab_size"]`` and every id. A streamed ``dsd`` is written to Arrow one batch at a time first."""
    dsd = {name: _to_arrow(d) for name, d in dsd.items()}
    if len(dsd["train"]) == 0:
        raise ValueError(f"no training blocks to save to {path}; use more text or a smaller block_size")
    block_size = len(dsd["train"][0]["input_ids"])
    top = max(int(ids.max(initial=0)) for d in dsd.values() for ids in _flat_blocks(d, block_size, path))
    dtype = shard_dtype(max(top + 1, (meta or {}).get("vocab_size", 0)))
    info = {}

    def save(tmp: Path) -> None:
        indexes = {}
        for name, d in dsd.items():
            writer = ShardWriter(tmp / name, dtype, block_size)
            for ids in _flat_blocks(d, block_size, path):
                writer.add(ids)
            indexes[name] = writer.finish()
        info.update(_shards_meta(indexes, meta))
        write_json_atomically(info, tmp / META_FILE)

    out = save_atomically(save, path)
    logger.info(
        "saved %s blocks of %d tokens (%s token shards) to %s", info["blocks"], block_size, dtype.name, out
    )
    return out


def _flat_blocks(ds: Dataset, block_size: int, path):
    """The blocks of ``ds``, batch by batch, as flat id arrays; ValueError for ragged blocks or labels that are
    not the inputs (shards store the inputs only)."""
    for table in ds.with_format("arrow").iter(batch_size=10_000):
        lengths = pc.list_value_length(table["input_ids"])
        if pc.min(lengths).as_py() != block_size or pc.max(lengths).as_py() != block_size:
            raise ValueError(
                f"blocks for {path} differ in length (not all {block_size} tokens); pack them again"
            )
        ids = pc.list_flatten(table["input_ids"])
        if (
            "labels" in table.column_names
            and not pc.all(pc.equal(pc.list_flatten(table["labels"]), ids)).as_py()
        ):
            raise ValueError(
                f"blocks for {path} have labels that differ from input_ids; token shards store inputs only"
            )
        yield ids.to_numpy()


def _to_arrow(ds: Dataset | IterableDataset) -> Dataset:
    if isinstance(ds, Dataset):
        return ds
    return Dataset.from_generator(_rows, features=FEATURES, gen_kwargs={"ds": ds})


def _rows(ds):
    yield from ds


def load_packed_dataset(
    path: str | os.PathLike,
    block_size: int | None = None,
    max_context: int | None = None,
    verify_checksums: bool = True,
) -> dict[str, TokenShardDataset] | DatasetDict:
    """Load data written by recipes/prepare_data.py, checking it fits ``block_size``/``max_context``: token
    shards as ``{split: TokenShardDataset}`` (sizes and, with ``verify_checksums``, checksums checked), or a
    directory in the earlier format (Arrow ``input_ids`` + ``labels``) as a ``DatasetDict``, with a warning."""
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
    if meta.get("format") == FORMAT:
        return {name: TokenShardDataset(p / name, verify_checksums) for name in meta["blocks"]}
    logger.warning(
        "%s holds blocks in the earlier format (int32 input_ids and labels, 8 bytes per token); it loads, but "
        "run recipes/prepare_data.py again to get token shards (2 bytes per token, memory-mapped)", path
    )  # fmt: skip
    return load_from_disk(str(p))


def build_lm_datasets(
    script_args, data_args: DataArguments, tokenizer, max_context: int | None = None
) -> DatasetDict | IterableDatasetDict | dict[str, TokenShardDataset]:
    """Train/validation blocks (``input_ids``, ``labels``) for causal-LM training: loaded from
    ``data_args.packed_dataset_path`` (token shards, memory-mapped; or the earlier Arrow format), or prepared from ``script_args.dataset_name`` (:func:`load_clean_split`
    then :func:`pack_corpus`). ``max_train_samples``/``max_eval_samples`` cap the splits."""
    if data_args.block_size is not None:
        resolve_block_size(data_args.block_size, tokenizer, max_context)  # fail before any loading
    if data_args.packed_dataset_path:
        dsd = load_packed_dataset(
            data_args.packed_dataset_path, data_args.block_size, max_context, data_args.verify_checksums
        )
    else:
        corpus, _ = load_clean_split(script_args, data_args)
        dsd = pack_corpus(corpus, tokenizer, data_args, max_context, source=script_args.dataset_name)
    for split, n in (("train", data_args.max_train_samples), ("validation", data_args.max_eval_samples)):
        if n is not None and split in dsd:
            d = dsd[split]
            capped = isinstance(d, (IterableDataset, TokenShardDataset))
            dsd[split] = d.take(n) if capped else d.select(range(min(n, len(d))))
    return dsd
