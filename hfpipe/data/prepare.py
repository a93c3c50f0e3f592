"""Source -> clean -> dedup -> seeded split -> tokenize + pack: the datasets every LM recipe trains on."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from datasets import DatasetDict, IterableDataset, IterableDatasetDict, load_from_disk

from hfpipe.data.args import DataArguments
from hfpipe.data.cleaning import clean_dataset
from hfpipe.data.packing import pack_dataset
from hfpipe.data.sources import load_text_dataset
from hfpipe.io import save_atomically

logger = logging.getLogger(__name__)

META_FILE = "hfpipe_data.json"


def _validation_mask(texts: list[str], seed: int, fraction: float) -> list[bool]:
    key = seed.to_bytes(8, "little", signed=True)
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


def prepare_dataset(data_args: DataArguments, tokenizer, max_context: int | None = None):
    """Load, clean, split and pack ``data_args.dataset_name``; returns (DatasetDict of blocks, cleaning report)."""
    block_size = resolve_block_size(data_args.block_size, tokenizer, max_context)
    stride = data_args.stride or block_size
    if stride > block_size:
        logger.warning("stride %d > block_size %d: tokens between blocks are skipped", stride, block_size)
    nproc = data_args.preprocessing_num_workers
    source = data_args.dataset_name
    ds = load_text_dataset(source, data_args.text_column, data_args.streaming, data_args.dataset_split,
                           data_args.dataset_config_name, data_args.column_names, data_args.sample_by)  # fmt: skip
    ds, report = clean_dataset(ds, data_args.normalize, data_args.min_chars, data_args.max_chars, data_args.dedup,
                               data_args.near_dedup, data_args.near_dedup_threshold, nproc, source=source)  # fmt: skip
    pack = lambda d: pack_dataset(d, tokenizer, block_size, stride, nproc)  # noqa: E731
    if data_args.validation_split_percentage <= 0:
        out = {"train": pack(ds)}
    else:
        train, val = split_dataset(ds, data_args.validation_split_percentage, data_args.split_seed, nproc)
        out = {"train": pack(train), "validation": pack(val)}
    if data_args.streaming:
        return IterableDatasetDict(out), report
    if len(out["train"]) == 0 or len(out.get("validation", [0])) == 0:
        # Too few documents for a document-level split (e.g. one long text file): split the packed
        # stream instead, the last blocks going to validation as in nanoGPT.
        blocks = out["train"] if len(out) == 1 else pack(ds)
        n_val = max(1, round(len(blocks) * data_args.validation_split_percentage / 100))
        if len(blocks) <= n_val:
            raise ValueError(
                f"{source}: the corpus packs into {len(blocks)} block(s) of {block_size} tokens, too few for "
                f"training and validation; use more text or a smaller block_size"
            )
        logger.warning("%s: too few documents for a document-level split; validation = last %d of %d blocks",
                       source, n_val, len(blocks))  # fmt: skip
        out = {
            "train": blocks.select(range(len(blocks) - n_val)),
            "validation": blocks.select(range(len(blocks) - n_val, len(blocks))),
        }
    for name, d in out.items():
        logger.info("%s: %s blocks of %d tokens (stride %d)", name, f"{len(d):,}", block_size, stride)
    return DatasetDict(out), report


def save_packed_dataset(dsd: DatasetDict, path: str | os.PathLike, meta: dict | None = None) -> Path:
    """``save_to_disk`` into a temp dir beside ``path``, then rename: an interrupted run leaves nothing."""

    def save(tmp: Path) -> None:
        dsd.save_to_disk(str(tmp))
        (tmp / META_FILE).write_text(json.dumps(meta or {}, indent=2))

    return save_atomically(save, path)


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


def build_lm_datasets(data_args: DataArguments, tokenizer, max_context: int | None = None) -> DatasetDict:
    """Train/validation blocks (``input_ids``, ``labels``) for causal-LM training, prepared from
    ``data_args.dataset_name`` or loaded from ``data_args.packed_dataset_path``."""
    if data_args.packed_dataset_path:
        if data_args.block_size is not None:
            resolve_block_size(data_args.block_size, tokenizer, max_context)
        dsd = load_packed_dataset(data_args.packed_dataset_path, data_args.block_size, max_context)
    else:
        dsd, _ = prepare_dataset(data_args, tokenizer, max_context)
    for split, n in (("train", data_args.max_train_samples), ("validation", data_args.max_eval_samples)):
        if n is not None and split in dsd:
            d = dsd[split]
            dsd[split] = d.take(n) if isinstance(d, IterableDataset) else d.select(range(min(n, len(d))))
    return dsd
