"""Evaluate one or many checkpoints and write one table: perplexity, bits per byte, lm-eval tasks, LLM judge: ``hfpipe evaluate`` as a script (settings: ``--help``; the code: ``hfpipe/cli/evaluate_model.py``)."""

from hfpipe.cli.evaluate_model import ARGUMENTS, main  # noqa: F401  (tests and benchmarks import them from here)
from hfpipe.recipe_args import run_recipe

if __name__ == "__main__":
    run_recipe(main)
