"""Data settings trl's ``ScriptArguments`` has no field for: reading, cleaning, splitting, packing.

The source itself (``dataset_name``, ``dataset_config``, ``dataset_train_split``, ``dataset_streaming``) is
trl's ``ScriptArguments``, so one parser holds both with no duplicate option and a trl YAML works as is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass
class SplitArguments:
    """How data without a split is divided: validation and test shares, the rest trains."""

    validation_size: float = field(
        default=0.1,
        metadata={"help": "Share of documents or records held out for validation (0.1 = 10 percent)."},
    )
    test_size: float = field(
        default=0.0,
        metadata={"help": "Share of records held out for testing (instruction, preference, labelled data)."},
    )
    split_seed: int | None = field(
        default=42,
        metadata={
            "help": "Seed of the splits; null keeps the records' file order (the book's instruction split)."
        },
    )

    def __post_init__(self):
        if not (
            0 <= self.validation_size < 1
            and 0 <= self.test_size < 1
            and self.validation_size + self.test_size < 1
        ):
            raise ValueError(
                f"validation_size={self.validation_size} and test_size={self.test_size} must be shares in [0, 1) "
                "that leave data for training; e.g. validation_size: 0.1 for a 90/10 split, 0 for none"
            )


@dataclass
class DataArguments(SplitArguments):
    """How the text is read, cleaned, split into train/validation and packed into blocks."""

    text_column: str = field(default="text", metadata={"help": "Column holding the text."})
    column_names: list[str] | None = field(
        default=None, metadata={"help": "Column names of a csv/tsv file without a header row."}
    )
    sample_by: str = field(
        default="document",
        metadata={"help": "For .txt files, one document per 'document' (file), 'paragraph' or 'line'."},
    )
    block_size: int | None = field(
        default=None, metadata={"help": "Tokens per packed block; None = min(1024, model context)."}
    )
    stride: int | None = field(
        default=None,
        metadata={"help": "Step between blocks: < block_size overlaps, None = block_size (disjoint)."},
    )
    preprocessing_num_workers: int | None = field(
        default=None,
        metadata={"help": "Processes per step; None = the cores available (fewer for small data)."},
    )
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
    shard_tokens: int = field(
        default=100_000_000,
        metadata={"help": "Tokens per token-shard file written by recipes/prepare_data.py (whole blocks)."},
    )
    verify_checksums: bool = field(
        default=True,
        metadata={"help": "Check each token shard's xxh3 checksum at load (sizes are always checked)."},
    )
    # ---- engine: datatrove (hfpipe/data/datatrove_engine.py; pip install "hfpipe[datatrove]") ----
    engine: str = field(
        default="builtin",
        metadata={"help": "Cleaning engine: 'builtin' (datasets) or 'datatrove' (its pipelines, on disk)."},
    )
    executor: str = field(default="local", metadata={"help": "datatrove executor: local, slurm or ray."})
    tasks: int | None = field(
        default=None, metadata={"help": "datatrove tasks (slices of the corpus); None = the cores here."}
    )
    workers: int | None = field(
        default=None, metadata={"help": "datatrove tasks running at once; None = all of them."}
    )
    quality_filters: list[str] | None = field(
        default=None,
        metadata={
            "help": "datatrove filters, in order: gopher_repetition, gopher_quality, c4, fineweb, c4_badwords."
        },
    )
    c4_badwords_file: str | None = field(
        default=None, metadata={"help": "Local copy of C4's English bad-words list (for c4_badwords)."}
    )
    datatrove_work_dir: str | None = field(
        default=None,
        metadata={
            "help": "datatrove's stage files and logs (shared by all nodes); None = the datasets cache."
        },
    )
    executor_options: dict | str | None = field(
        default=None,
        metadata={
            "help": "Settings of the datatrove executor, e.g. {partition: cpu, time: '10:00:00'} (slurm)."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.engine not in ("builtin", "datatrove"):
            raise ValueError(f"engine={self.engine!r}; use 'builtin' or 'datatrove'")
        if isinstance(self.executor_options, str):  # JSON on the command line
            try:
                self.executor_options = json.loads(self.executor_options)
            except json.JSONDecodeError:
                raise ValueError(
                    f'executor_options={self.executor_options!r} is not JSON; e.g. \'{{"partition": "cpu"}}\''
                ) from None
