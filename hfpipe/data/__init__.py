"""Data pipeline: sources, cleaning, tokenize + pack, and the datasets LM recipes train on."""

from hfpipe.data.args import DataArguments
from hfpipe.data.cleaning import CleaningStep, clean_dataset, format_report, normalize_text
from hfpipe.data.packing import FEATURES, pack_dataset, pack_ids, tokenize_and_pack
from hfpipe.data.prepare import (
    build_lm_datasets,
    load_packed_dataset,
    prepare_dataset,
    resolve_block_size,
    save_packed_dataset,
    split_dataset,
)
from hfpipe.data.sources import load_text_dataset

__all__ = [
    "FEATURES",
    "CleaningStep",
    "DataArguments",
    "build_lm_datasets",
    "clean_dataset",
    "format_report",
    "load_packed_dataset",
    "load_text_dataset",
    "normalize_text",
    "pack_dataset",
    "pack_ids",
    "prepare_dataset",
    "resolve_block_size",
    "save_packed_dataset",
    "split_dataset",
    "tokenize_and_pack",
]
