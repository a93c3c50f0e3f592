"""Data pipeline: sources, cleaning, one load -> clean -> split path, tokenize + pack, token shards.

The names below load with their module on first use, so a recipe's dataclasses (``DataArguments``) come
without datasets, pandas and pyarrow when a command only prints its ``--help``.
"""

import importlib

# name -> the module of hfpipe.data that defines it
_EXPORTS = {
    "DataArguments": "args", "SplitArguments": "args",
    "CleaningStep": "cleaning", "clean_dataset": "cleaning", "format_report": "cleaning", "normalize_text": "cleaning",
    "FEATURES": "packing", "pack_dataset": "packing", "pack_ids": "packing", "tokenize_and_pack": "packing",
    "build_lm_datasets": "prepare", "corpus_fingerprint": "sources", "load_clean_split": "prepare",
    "load_packed_dataset": "prepare", "pack_corpus": "prepare", "resolve_block_size": "prepare",
    "save_packed_dataset": "prepare", "save_token_shards": "prepare", "split_by_position": "prepare",
    "split_dataset": "prepare",
    "ShardWriter": "shards", "TokenShardDataset": "shards", "write_token_shards": "shards",
    "load_text_dataset": "sources",
}  # fmt: skip
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """The package's names, imported from their modules on first use."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
