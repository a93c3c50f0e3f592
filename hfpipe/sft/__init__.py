"""Supervised fine-tuning (instruction tuning) on trl's SFTTrainer: response-only masks, packing checks, chat.

The instruction formats and the book's split are shared with the preference stages: ``hfpipe.data.instructions``.
"""

from .data import SFTArguments, SFTDataStats, prepare_data, tokenize_records

__all__ = ["SFTArguments", "SFTDataStats", "prepare_data", "tokenize_records"]
