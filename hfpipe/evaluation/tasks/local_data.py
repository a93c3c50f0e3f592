"""Datasets of hfpipe's local lm-eval tasks, read from the files beside this module (no network).

The task YAMLs name these functions as ``custom_dataset: !function local_data.<name>``; lm-eval calls
them with the task's metadata as keyword arguments, which they ignore.
"""

from pathlib import Path

from datasets import Dataset, DatasetDict

HERE = Path(__file__).resolve().parent


def multiple_choice(**_) -> DatasetDict:
    """hfpipe_mc: hand-written cloze questions with four choices (``question``, ``choices``, ``answer``)."""
    return DatasetDict({"test": Dataset.from_json(str(HERE / "hfpipe_mc.jsonl"))})


def paragraphs(**_) -> DatasetDict:
    """hfpipe_bpb: the paragraphs of ``hfpipe_text.txt``, one document each (``text``)."""
    text = (HERE / "hfpipe_text.txt").read_text(encoding="utf-8")
    docs = [p.strip() for p in text.split("\n\n") if p.strip()]
    return DatasetDict({"test": Dataset.from_dict({"text": docs})})
