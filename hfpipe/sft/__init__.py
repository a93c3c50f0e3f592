"""Supervised fine-tuning (instruction tuning) on trl's SFTTrainer: formats, masks, test answers, chat."""

from .data import (
    SFTArguments,
    SFTDataStats,
    load_sft_records,
    prepare_tokenizer,
    split_records,
    tokenize_records,
)
from .formats import ALPACA_CHAT_TEMPLATE, detect_format, format_alpaca_prompt, normalize_records

__all__ = [
    "ALPACA_CHAT_TEMPLATE",
    "SFTArguments",
    "SFTDataStats",
    "detect_format",
    "format_alpaca_prompt",
    "load_sft_records",
    "normalize_records",
    "prepare_tokenizer",
    "split_records",
    "tokenize_records",
]
