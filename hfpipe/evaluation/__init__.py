"""Evaluation: perplexity and bits per byte, lm-evaluation-harness, LLM-as-judge, one results table.

lm-eval is an optional extra (``pip install 'hfpipe[eval]'``); it is imported only when a task runs.
"""

from hfpipe.evaluation.perplexity import PerplexityResult, evaluate_perplexity, sliding_windows
from hfpipe.evaluation.results import (
    RESULTS_FILE,
    make_results,
    read_results,
    write_results,
    write_results_table,
)

__all__ = [
    "RESULTS_FILE",
    "PerplexityResult",
    "evaluate_perplexity",
    "make_results",
    "read_results",
    "sliding_windows",
    "write_results",
    "write_results_table",
]
