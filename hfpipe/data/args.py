"""Data settings common to every recipe (flat, run_clm-style names)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DataArguments:
    """Where the text comes from, how it is cleaned, split and packed into blocks."""

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Hub dataset id, a local .txt/.jsonl/.json/.csv/.tsv/.parquet file, a directory or a glob."
        },
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration."})
    dataset_split: str = field(default="train", metadata={"help": "Split to read from the source."})
    text_column: str = field(default="text", metadata={"help": "Column holding the text."})
    column_names: list[str] | None = field(
        default=None, metadata={"help": "Column names of a csv/tsv file without a header row."}
    )
    sample_by: str = field(
        default="document",
        metadata={"help": "For .txt files, one document per 'document' (file), 'paragraph' or 'line'."},
    )
    streaming: bool = field(
        default=False, metadata={"help": "Stream the source instead of caching it as Arrow."}
    )
    validation_split_percentage: float = field(
        default=10.0, metadata={"help": "Percent of documents (seeded, by content hash) kept for validation."}
    )
    split_seed: int = field(default=42, metadata={"help": "Seed of the train/validation split."})
    block_size: int | None = field(
        default=None, metadata={"help": "Tokens per packed block; None = min(1024, model context)."}
    )
    stride: int | None = field(
        default=None,
        metadata={"help": "Step between blocks: < block_size overlaps, None = block_size (disjoint)."},
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for map()."})
    normalize: str | None = field(default="NFC", metadata={"help": "Unicode normal form, or None to skip."})
    min_chars: int = field(
        default=1, metadata={"help": "Drop documents shorter than this (after normalizing)."}
    )
    max_chars: int | None = field(default=None, metadata={"help": "Drop documents longer than this."})
    dedup: bool = field(default=True, metadata={"help": "Remove exact duplicate documents."})
    near_dedup: bool = field(default=False, metadata={"help": "Remove near duplicates (MinHash LSH)."})
    near_dedup_threshold: float = field(
        default=0.8, metadata={"help": "Jaccard similarity counted as duplicate."}
    )
    packed_dataset_path: str | None = field(
        default=None,
        metadata={"help": "Load blocks written by recipes/prepare_data.py instead of preparing."},
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Keep at most this many train blocks."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Keep at most this many validation blocks."}
    )
