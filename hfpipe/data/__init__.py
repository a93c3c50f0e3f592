"""Data pipeline: sources, cleaning, one load -> clean -> split path, tokenize + pack, token shards."""

from hfpipe.data.args import DataArguments, SplitArguments
from hfpipe.data.cleaning import CleaningStep, clean_dataset, format_report, normalize_text
from hfpipe.data.packing import FEATURES, pack_dataset, pack_ids, tokenize_and_pack
from hfpipe.data.prepare import (
    build_lm_datasets,
    load_clean_split,
    load_packed_dataset,
    pack_corpus,
    resolve_block_size,
    save_packed_dataset,
    save_token_shards,
    split_by_position,
    split_dataset,
)
from hfpipe.data.shards import ShardWriter, TokenShardDataset, write_token_shards
from hfpipe.data.sources import corpus_fingerprint, load_text_dataset

__all__ = [
    "FEATURES",
    "CleaningStep",
    "DataArguments",
    "ShardWriter",
    "SplitArguments",
    "TokenShardDataset",
    "build_lm_datasets",
    "clean_dataset",
    "corpus_fingerprint",
    "format_report",
    "load_clean_split",
    "load_packed_dataset",
    "load_text_dataset",
    "normalize_text",
    "pack_corpus",
    "pack_dataset",
    "pack_ids",
    "resolve_block_size",
    "save_packed_dataset",
    "save_token_shards",
    "split_by_position",
    "split_dataset",
    "tokenize_and_pack",
    "write_token_shards",
]
