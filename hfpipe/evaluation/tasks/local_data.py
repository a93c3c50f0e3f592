"""Datasets of hfpipe's local lm-eval tasks, read from the files beside this module (no network).

The task YAMLs name these functions as ``custom_dataset: !function local_data.<name>``; lm-eval calls
them with the task's metadata as keyword arguments, which they ignore.
"""

from pathlib import Path

from datasets import Dataset, DatasetDict

HERE = Path(__file__).resolve().parent


def multiple_choice(**_) -> DatasetDict:
    """hfpipe_mc: cloze sentences from held-out docstrings, four choices each (``question``, ``choices``,
    ``answer``); built by ``python -m hfpipe.evaluation.cloze``."""
    return DatasetDict({"test": Dataset.from_json(str(HERE / "hfpipe_mc.jsonl"))})


def _paragraphs() -> list[str]:
    text = (HERE / "hfpipe_text.txt").read_text(encoding="utf-8")
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def paragraphs(**_) -> DatasetDict:
    """hfpipe_bpb: the paragraphs of ``hfpipe_text.txt``, one document each (``text``)."""
    return DatasetDict({"test": Dataset.from_dict({"text": _paragraphs()})})


def task_size(task: str) -> int:
    """Items of a local task: cloze items of ``hfpipe_mc``, paragraphs of ``hfpipe_bpb``."""
    if task == "hfpipe_mc":
        lines = (HERE / "hfpipe_mc.jsonl").read_text(encoding="utf-8").splitlines()
        return sum(1 for line in lines if line.strip())
    return len(_paragraphs())
