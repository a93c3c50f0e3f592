"""Preference pairs: load, normalise, drop what cannot be learned, split as SFT does (85/10/5).

Accepted shapes (one per dataset, detected from the columns):

    {"chosen": str, "rejected": str, "prompt": str (optional)}                  # plain pairs
    {"chosen": [messages], "rejected": [messages], "prompt": [messages] (opt.)}  # conversational pairs
    {"instruction", "input", "chosen", "rejected", ...}                         # the book's records

The book's records become plain pairs whose prompt is SFT's Alpaca prompt (``format_alpaca_prompt``), so a
reward model or DPO run sees exactly the prompts SFT trained on. A pair whose chosen and rejected answers are
the same teaches nothing: it is dropped and counted.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from datasets import Dataset

from hfpipe.data.instructions import (
    InstructionSplitArguments,
    format_alpaca_prompt,
    keep_and_count,
    split_records,
)
from hfpipe.data.sources import load_raw_dataset

logger = logging.getLogger(__name__)

PAIR_COLUMNS = ("prompt", "chosen", "rejected")
EXPECTED_COLUMNS = (
    "chosen and rejected (strings or lists of messages, with an optional prompt), "
    "or the book's instruction, input, chosen, rejected"
)


@dataclass
class PreferenceDataArguments(InstructionSplitArguments):
    """How preference records are split: the same 85/10/5 (train/test/validation) in file order as SFT."""


def detect_pair_format(columns) -> str:
    """``alpaca`` (the book's records), ``pairs``, or a ValueError naming the expected columns."""
    cols = set(columns)
    if {"chosen", "rejected"} <= cols:
        return "alpaca" if "instruction" in cols and "prompt" not in cols else "pairs"
    missing = sorted({"chosen", "rejected"} - cols)
    raise ValueError(
        f"preference data needs the columns {EXPECTED_COLUMNS}; it has {sorted(cols)} (missing {missing}). "
        "Rename the columns"
    )


def _is_messages(value) -> bool:
    return isinstance(value, list) and all(isinstance(m, dict) and "role" in m for m in value)


def normalize_pair(record: dict, fmt: str) -> tuple[dict | None, str | None]:
    """``record`` as ``{prompt?, chosen, rejected, instruction?, input?}``, or (None, the reason to drop it)."""
    chosen, rejected = record.get("chosen"), record.get("rejected")
    if fmt == "alpaca":
        if not isinstance(record.get("instruction"), str) or not record["instruction"].strip():
            return None, "empty instruction"
        source = {"instruction": record["instruction"], "input": record.get("input") or ""}
        pair = {"prompt": format_alpaca_prompt(source), "chosen": chosen, "rejected": rejected, **source}
    else:
        pair = {k: record[k] for k in PAIR_COLUMNS if record.get(k) is not None}
    texts = [v for k, v in pair.items() if k in PAIR_COLUMNS]
    if not (all(isinstance(v, str) for v in texts) or all(_is_messages(v) for v in texts)):
        return None, "not text, or text mixed with messages"
    if not chosen or not rejected or (isinstance(chosen, str) and not (chosen.strip() and rejected.strip())):
        return None, "empty chosen or rejected"
    if chosen == rejected:
        return None, "chosen identical to rejected"
    return pair, None


def normalize_pairs(records, fmt: str) -> tuple[list[dict], Counter]:
    """Normalise every record; returns (the usable pairs, a Counter of drop reasons)."""
    return keep_and_count(records, lambda record: normalize_pair(record, fmt))


def _load(dataset_name: str, dataset_config: str | None, split: str):
    if not dataset_name:
        raise ValueError(
            "no dataset given: set dataset_name to a .json/.jsonl/.parquet file of preference pairs"
        )
    ds = load_raw_dataset(dataset_name, split=split, config_name=dataset_config)
    return ds, detect_pair_format(ds.column_names)


def load_pairs(
    dataset_name: str, dataset_config: str | None = None, split: str = "train"
) -> tuple[list[dict], str, Counter]:
    """Load and normalise preference records (any hfpipe data source); returns (pairs, format, dropped)."""
    ds, fmt = _load(dataset_name, dataset_config, split)
    pairs, dropped = normalize_pairs(ds, fmt)
    if dropped:
        logger.warning(
            "%s: dropped %d of %d pairs (%s)", dataset_name, sum(dropped.values()), len(ds), dict(dropped)
        )
    if not pairs:
        raise ValueError(f"{dataset_name}: no usable preference pair ({dict(dropped)}); check the data")
    return pairs, fmt, dropped


def split_pairs(pairs: list[dict], args: PreferenceDataArguments) -> dict[str, list[dict]]:
    """train/test/validation exactly as SFT splits (``hfpipe.data.instructions.split_records``)."""
    return split_records(pairs, args.test_size, args.validation_size, args.split_seed)


def load_split_pairs(
    dataset_name: str, args: PreferenceDataArguments, dataset_config: str | None = None, split: str = "train"
) -> tuple[dict[str, list[dict]], str, Counter]:
    """The records split as SFT splits them, then normalised: every pair stays in the split SFT put it in.

    Returns (splits, format, dropped pairs by reason over all splits).
    """
    ds, fmt = _load(dataset_name, dataset_config, split)
    splits, dropped = {}, Counter()
    for name, records in split_pairs(list(ds), args).items():
        splits[name], lost = normalize_pairs(records, fmt)
        dropped.update(lost)
    if dropped:
        logger.warning(
            "%s: dropped %d of %d pairs (%s)", dataset_name, sum(dropped.values()), len(ds), dict(dropped)
        )
    if not splits["train"]:
        raise ValueError(
            f"{dataset_name}: no usable preference pair to train on ({dict(dropped)}); check the data"
        )
    return splits, fmt, dropped


def to_dataset(pairs: list[dict]) -> Dataset:
    """The pairs as a ``datasets.Dataset`` of only the columns trl reads (prompt, chosen, rejected)."""
    return Dataset.from_list([{k: p[k] for k in PAIR_COLUMNS if k in p} for p in pairs])


__all__ = [
    "EXPECTED_COLUMNS",
    "PreferenceDataArguments",
    "detect_pair_format",
    "load_pairs",
    "load_split_pairs",
    "normalize_pair",
    "normalize_pairs",
    "split_pairs",
    "to_dataset",
]
